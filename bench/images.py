"""Image benchmarks on Fashion-MNIST (Debian package dataset-fashion-mnist: 70,000 28x28 grayscale product photos,
10 classes, MIT licence), converted to the ZIP a user would upload (train/<class>/<n>.png, test/<class>/<n>.png).

`python bench/images.py import [--images 10000]`: `protolab datasets add images.zip --task images` in a child
process (wall time and peak RSS of the whole command, after a first command has created the database), against
the classic script's first pass over the same ZIP in the same run: extract it and decode every image once with
PIL (what an ImageFolder + DataLoader script does before training). Target: under a minute, under 2 GB.

`python bench/images.py train --models cnn,linear_probe --train 10000 --test 10000`: the same ZIP (with the
official test images as its test split) through `protolab datasets add` and `protolab train --model M --wait
--json` for each model: test accuracy and training time; and, for the CNN, the training throughput of our loop
against a plain PyTorch loop (the classic script: decoded tensors, a DataLoader, Adam) on the same network, data
and batch size, in the same run.

The data is read from /usr/share/datasets/fashion-mnist (`apt-get install dataset-fashion-mnist`) and written
only to a temporary folder.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N) of the official train or test split, from the IDX files."""
    images_file, labels_file = FILES[split]
    if not (FASHION / images_file).exists():
        sys.exit(f"{FASHION / images_file} is missing: apt-get install -y dataset-fashion-mnist")
    with gzip.open(FASHION / images_file) as fh:
        raw = fh.read()
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    with gzip.open(FASHION / labels_file) as fh:
        labels = np.frombuffer(fh.read(), dtype=np.uint8, offset=8)
    return images, labels


def write_zip(path: Path, train: int | None = None, test: int | None = 0) -> int:
    """The ImageFolder ZIP of the first `train` training and `test` test images (None: all); how many it holds."""
    written = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # PNG is compressed already
        for split, limit in (("train", train), ("test", test)):
            if limit == 0:
                continue
            images, labels = fashion_mnist(split)
            for i, (pixels, label) in enumerate(zip(images[:limit], labels[:limit], strict=True)):
                out = io.BytesIO()
                Image.fromarray(pixels, "L").save(out, "PNG")
                archive.writestr(f"{split}/{CLASSES[label]}/{i:05d}.png", out.getvalue())
                written += 1
    return written


def classic_first_pass(zip_path: Path, folder: Path) -> dict:
    """The baseline: extract the ZIP and decode every image once (an ImageFolder script's first epoch's I/O)."""
    started = time.perf_counter()
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    decoded = 0
    for path in sorted(folder.rglob("*.png")):
        with Image.open(path) as image:
            image.convert("RGB").load()
        decoded += 1
    return {"images": decoded, "seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return done, seconds


def bench_import(images: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        zip_path = tmp_path / "fashion.zip"
        t0 = time.perf_counter()
        count = write_zip(zip_path, train=images, test=0)
        print(f"wrote {count:,} PNGs, {zip_path.stat().st_size / 1e6:.1f} MB ZIP in {time.perf_counter() - t0:.1f} s")
        home = tmp_path / "home"
        env = {**os.environ, "PROTOLAB_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
               "PYTHONPATH": str(ROOT)}
        home.mkdir()
        cli = [sys.executable, "-m", "core.cli"]
        run([*cli, "datasets", "list"], env)  # creates the database: not part of an import
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done, seconds = run([*cli, "datasets", "add", str(zip_path), "--task", "images", "--json"], env)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # before the baseline's child runs
        summary = json.loads(done.stdout)
        base = json.loads(run([sys.executable, __file__, "classic", str(zip_path), str(tmp_path / "x")], env)[0]
                          .stdout.strip().splitlines()[-1])
    # RUSAGE_CHILDREN keeps the largest child so far: the import's peak is known only when it is the largest.
    peak_text = f"{peak / 1024:,.0f} MiB" if peak > before else f"<= {before / 1024:,.0f} MiB"
    print(f"  classic extract + decode: {base['images']:,} images in {base['seconds']:.2f} s, "
          f"peak RSS {base['peak_rss_mib']:,} MiB")
    print(f"  protolab datasets add:    {summary['rows']:,} images in {seconds:.2f} s "
          f"({summary['rows'] / seconds:,.0f} images/s), peak RSS {peak_text}; splits {summary['splits']}")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok = seconds < 60 and peak < 2048 * 1024
    print(f"import / classic time ratio: {seconds / base['seconds']:.2f}x; target < 60 s and < 2 GB: "
          f"{'met' if ok else 'NOT met'}")


def classic_cnn_throughput(zip_path: Path, size: int, batch_size: int, limit_s: float = 120.0) -> float:
    """Samples/s of the classic PyTorch script on our SmallCnn: images decoded once, a shuffled DataLoader, Adam,
    cross-entropy; timed over at most one epoch or `limit_s`."""
    import torch

    sys.path.insert(0, str(ROOT))
    from core.images.nets import CNN_MEAN_STD, SmallCnn
    from core.images.pixels import normalise, to_square_tensor

    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if n.startswith("train/")]
        pixels = torch.stack([to_square_tensor(Image.open(io.BytesIO(archive.read(n))), size) for n in names])
    classes = sorted({n.split("/")[1] for n in names})
    labels = torch.tensor([classes.index(n.split("/")[1]) for n in names])
    x = normalise(pixels, *CNN_MEAN_STD)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=batch_size,
                                         shuffle=True)
    model = SmallCnn(len(classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    seen, started = 0, time.perf_counter()
    for xb, yb in loader:
        loss = torch.nn.functional.cross_entropy(model(xb).logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(xb)
        if time.perf_counter() - started > limit_s:
            break
    return seen / (time.perf_counter() - started)


def bench_train(models: list[str], n_train: int, n_test: int, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        zip_path = tmp_path / "fashion.zip"
        count = write_zip(zip_path, train=n_train, test=n_test)
        home = tmp_path / "home"
        home.mkdir()
        env = {**os.environ, "PROTOLAB_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
               "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "core.cli"]
        run([*cli, "datasets", "add", str(zip_path), "--task", "images", "--name", "fashion", "--json"], env)
        print(f"{count:,} images ({n_train:,} train incl. validation, {n_test:,} official test); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for model in models:
            done, seconds = run([*cli, "train", "--dataset", "fashion", "--model", model, *extra, "--wait",
                                 "--json"], env)
            result = json.loads(done.stdout)
            metrics = result.get("metrics") or {}
            if result["status"] != "completed":
                print(f"  {model}: {result['status']}: {result.get('error')}")
                continue
            config = result["config"]
            print(f"  {model}: test accuracy {metrics['accuracy']:.4f} (macro-F1 {metrics['macro_f1']:.4f}) on "
                  f"{metrics['test_set']['rows']:,} images; training {metrics['train_time_s']:.0f} s, "
                  f"{metrics['train_samples_per_s']:.0f} samples/s, run {seconds:.0f} s; image size "
                  f"{config['image_size']}, epochs {config['epochs']}, batch {config['batch_size']}")
            if model == "cnn":
                classic = classic_cnn_throughput(zip_path, config["image_size"], config["batch_size"])
                print(f"    plain PyTorch loop, same network/data/batch: {classic:.0f} samples/s; ours / plain "
                      f"= {metrics['train_samples_per_s'] / classic:.2f}x")
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    imp = sub.add_parser("import", help="protolab datasets add of a Fashion-MNIST ZIP against extract + decode")
    imp.add_argument("--images", type=int, default=10_000, help="training images in the ZIP (default 10,000)")
    train = sub.add_parser("train", help="protolab train of each image model on Fashion-MNIST: test accuracy")
    train.add_argument("--models", default="linear_probe,cnn", help="comma-separated kinds (default: both baselines)")
    train.add_argument("--train", type=int, default=None, help="training images (default: all 60,000)")
    train.add_argument("--test", type=int, default=None, help="official test images (default: all 10,000)")
    train.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `protolab train` flags")
    classic = sub.add_parser("classic", help=argparse.SUPPRESS)
    classic.add_argument("zip", type=Path)
    classic.add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.part == "classic":
        print(json.dumps(classic_first_pass(args.zip, args.folder)))
    elif args.part == "train":
        bench_train(args.models.split(","), args.train, args.test, [a for a in args.extra if a != "--"])
    else:
        bench_import(args.images)


if __name__ == "__main__":
    main()
