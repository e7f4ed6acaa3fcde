"""Importing image datasets: the three layouts, the stored format, and every bad input named and stored nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from core.cli import main
from core.data import datasets as ds
from core.data.storage import load_frame
from core.data.types import DatasetError, DuplicateContent, SplitConfig
from core.images import IMAGE, KEY_PATTERN, TASK, charts
from core.images import archive as archive_module
from core.images.importing import ImageOptions, prepare_images
from core.images.profile import images_profile
from core.images.reading import guess_options, looks_like_images, read_images
from core.images.store import image_path, open_image
from core.settings import load_settings
from db import datasets as dataset_queries
from db import session_scope
from tests.image_files import folders, make_zip, picture

COLUMNS = ["row_id", "image", "label", "split", "path", "width", "height"]


def prepare(data: bytes, name: str = "pets.zip", split: SplitConfig | None = None, **options: object):  # noqa: ANN201
    table = read_images(data, name)
    guessed = guess_options(table)
    chosen = ImageOptions(**{"layout": guessed.layout, "image_col": guessed.image_col,
                             "label_col": guessed.label_col, **options})
    return prepare_images(table, table.payload.archive, chosen, split)


def store(prepared, name: str = "pets") -> int:  # noqa: ANN001
    with session_scope() as s:
        return ds.import_dataset(s, prepared, name=name).id


def nothing_stored() -> bool:
    with session_scope() as s:
        rows = dataset_queries.list_datasets(s)
    root = load_settings().datasets_dir
    return not rows and (not root.exists() or not any(root.iterdir()))


def test_folders_with_split_folders_store_the_contract() -> None:
    entries = {**folders({"cat": 6, "dog": 5}, "train", top="pets"),
               **folders({"cat": 2, "dog": 2}, "test", top="pets", start=100)}
    prepared = prepare(make_zip(entries), split=SplitConfig((0.8, 0.2, 0.0)))
    frame = prepared.frame
    assert list(frame.columns) == COLUMNS
    assert frame.groupby("split").size().to_dict() == {"test": 4, "train": 9, "validation": 2}  # val cut from train
    assert set(frame.loc[frame["split"] == "test", "path"]) == {p for p in entries if "/test/" in p}
    dataset_id = store(prepared)
    with session_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        stored = load_frame(dataset)
        assert dataset.task == TASK and dataset.stats["classes"] == {"cat": 8, "dog": 7}
    assert stored["row_id"].tolist() == list(range(15)) and stored["width"].eq(12).all()
    for key, path in zip(stored[IMAGE], stored["path"], strict=True):
        assert KEY_PATTERN.fullmatch(key)
        assert image_path(dataset_id, key).read_bytes() == entries[path]  # the uploaded bytes, unchanged
    assert open_image(image_path(dataset_id, stored[IMAGE][0])).mode == "RGB"
    with pytest.raises(DuplicateContent), session_scope() as s:  # the same images and labels again
        ds.import_dataset(s, prepare(make_zip(entries), split=SplitConfig((0.8, 0.2, 0.0))), name="again")


def test_folders_without_splits_are_split_by_label_and_formats_are_read_by_content() -> None:
    entries = folders({"ok": 5, "ko": 5})
    entries["ok/photo.jpg"] = picture(50, fmt="JPEG")
    entries["ko/scan.bmp"] = picture(51, fmt="BMP")
    entries["ko/anim.gif"] = picture(52, fmt="GIF")
    entries["ok/named-wrong.jpg"] = picture(53, fmt="WEBP")
    prepared = prepare(make_zip(entries))
    frame = prepared.frame
    assert frame.groupby("split")["label"].nunique().to_dict() == {"test": 2, "train": 2, "validation": 2}
    keys = dict(zip(frame["path"], frame[IMAGE], strict=True))
    assert keys["ok/photo.jpg"].endswith(".jpg") and keys["ko/scan.bmp"].endswith(".bmp")
    assert keys["ok/named-wrong.jpg"].endswith(".webp") and keys["ko/anim.gif"].endswith(".gif")


def test_a_table_inside_the_zip_or_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = {f"imgs/{i}.png": picture(i) for i in range(8)}
    labels = pd.DataFrame({"file": [f"{i}.png" for i in range(8)], "kind": ["a", "b"] * 4, "note": "x"})
    inside = make_zip({**images, "imgs/labels.csv": labels.to_csv(index=False).encode()})
    table = read_images(inside, "shop.zip")
    assert guess_options(table).layout == "table" and guess_options(table).image_col == "file"
    assert guess_options(table).label_col == "kind"
    prepared = prepare(inside, "shop.zip")
    assert prepared.frame["label"].value_counts().to_dict() == {"a": 4, "b": 4}
    # a CSV naming paths from the ZIP's top, with the ZIP given beside it on the CLI
    zip_path = tmp_path / "photos.zip"
    make_zip(images, zip_path)
    csv = tmp_path / "labels.csv"
    labels.assign(file=[f"imgs/{i}.png" for i in range(8)]).to_csv(csv, index=False)
    code = main(["datasets", "add", str(csv), "--task", "images", "--images", str(zip_path),
                 "--image-col", "file", "--label-col", "kind", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["classes"] == {"a": 4, "b": 4}
    labels.loc[3, "file"] = "imgs/missing.png"
    labels.to_csv(csv, index=False)
    code = main(["datasets", "add", str(csv), "--task", "images", "--images", str(zip_path), "--name", "bad"])
    assert code != 0 and "imgs/missing.png" in capsys.readouterr().err


def test_an_unlabelled_zip_keeps_each_picture_once() -> None:
    entries = {f"batch/{i}.png": picture(i) for i in range(6)}
    entries["batch/copy.png"] = entries["batch/0.png"]
    table = read_images(make_zip(entries), "new.zip")
    assert guess_options(table).layout == "unlabelled"
    prepared = prepare(make_zip(entries), "new.zip")
    assert prepared.frame["label"].isna().all() and set(prepared.frame["split"]) == {"train"}
    assert len(prepared.frame) == 6 and prepared.mapping["unlabelled"] is True
    assert any("batch/0.png = batch/copy.png" in w for w in prepared.warnings)


def test_unreadable_files_are_listed_and_may_be_skipped() -> None:
    entries = folders({"cat": 4, "dog": 4})
    good = picture(99)
    entries.update({"cat/empty.png": b"", "cat/cut.png": good[: len(good) // 2], "dog/notes.txt": b"hello",
                    "dog/garbage.jpg": bytes(range(256))})
    with pytest.raises(DatasetError) as caught:
        prepare(make_zip(entries))
    message = str(caught.value)
    assert message.startswith("pets.zip: 4 files are not a readable image")
    for name in ("cat/empty.png (an empty file", "cat/cut.png (a corrupt or truncated", "dog/notes.txt (not an image",
                 "dog/garbage.jpg (not an image"):
        assert name in message
    assert nothing_stored()
    prepared = prepare(make_zip(entries), skip_bad=True)
    assert len(prepared.frame) == 8 and len(prepared.stats["bad_files"]) == 4
    assert any("skipped 4 unreadable files" in w for w in prepared.warnings)


def test_a_decompression_bomb_is_refused_even_when_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = folders({"cat": 4, "dog": 4})
    entries["dog/huge.png"] = picture(7, size=(200, 200))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(DatasetError, match=r"pets.zip: dog/huge.png: too many pixels"):
        prepare(make_zip(entries), skip_bad=True)


@pytest.mark.parametrize("name", ["../evil.png", "cat/../../evil.png", "/etc/evil.png", "C:/evil.png",
                                  "..\\evil.png", "\\\\server\\evil.png"])
def test_entries_reaching_outside_are_refused(name: str) -> None:
    entries = {**folders({"cat": 3, "dog": 3}), name: picture(5)}
    with pytest.raises(DatasetError, match="(entry has|entries have) paths outside the archive") as caught:
        read_images(make_zip(entries), "pets.zip")
    assert name in str(caught.value)


def test_symlinks_and_encrypted_entries_are_refused() -> None:
    with pytest.raises(DatasetError, match=r"symbolic links are not accepted \(cat/link.png\)"):
        read_images(make_zip(folders({"cat": 3, "dog": 3}), links={"cat/link.png": "/etc/passwd"}), "pets.zip")
    data = bytearray(make_zip(folders({"cat": 3, "dog": 3})))
    central = data.rfind(b"PK\x01\x02")  # set the "encrypted" flag of the last entry in the central directory
    data[central + 8] |= 0x1
    with pytest.raises(DatasetError, match="encrypted"):
        read_images(bytes(data), "pets.zip")


def test_zip_bombs_and_absurd_sizes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = {**folders({"cat": 3, "dog": 3}), "cat/zeros.png": bytes(8 * 2**20)}
    with pytest.raises(DatasetError, match=r"expands more than 100x \(cat/zeros.png\).*zip bomb"):
        read_images(make_zip(bomb), "pets.zip")
    monkeypatch.setattr(archive_module, "MAX_EXPANDED_BYTES", 1000)
    with pytest.raises(DatasetError, match="expand to .* GiB; at most"):
        read_images(make_zip(folders({"cat": 30, "dog": 30})), "pets.zip")


def test_a_class_of_one_image_is_named_or_dropped() -> None:
    entries = {**folders({"cat": 4, "dog": 4}), "bird/only.png": picture(77)}
    with pytest.raises(DatasetError, match=r"class 'bird' has only 1 image\(s\) \(bird/only.png\)"):
        prepare(make_zip(entries))
    prepared = prepare(make_zip(entries), drop_rare_classes=True)
    assert set(prepared.frame["label"]) == {"cat", "dog"}
    with pytest.raises(DatasetError, match="at least 2 classes"):
        prepare(make_zip(folders({"cat": 4}, top="a")), layout="folders")
    with pytest.raises(DatasetError, match=r"not inside a class folder \(loose.png\)"):
        prepare(make_zip({**folders({"cat": 3, "dog": 3}), "loose.png": picture(3)}), layout="folders")
    with pytest.raises(DatasetError, match="outside the train/val/test folders"):
        prepare(make_zip({**folders({"cat": 3, "dog": 3}, "train"), **folders({"cat": 3}, start=9)}))


def test_duplicates_and_leakage_are_reported_with_their_files() -> None:
    entries = {**folders({"cat": 4, "dog": 4}, "train"), **folders({"cat": 2, "dog": 2}, "test", start=50)}
    entries["test/cat/again.png"] = entries["train/cat/0.png"]
    prepared = prepare(make_zip(entries))
    assert prepared.stats["duplicates"] == 1 and prepared.stats["leaked_images"] == 1
    assert prepared.stats["leaked"] == [["test/cat/again.png", "train/cat/0.png"]]
    assert any("leakage): test/cat/again.png = train/cat/0.png" in w for w in prepared.warnings)
    dropped = prepare(make_zip(entries), drop_duplicates=True)
    assert len(dropped.frame) == len(prepared.frame) - 1 and dropped.stats["leaked_images"] == 0


def test_cli_adds_a_zip_and_refuses_bad_ones_with_one_line(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pets.zip"
    make_zip({**folders({"cat": 4, "dog": 4}), "dog/broken.png": b"\x89PNG nope"}, path)
    code = main(["datasets", "add", str(path), "--task", "images"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1
    assert "pets.zip: 1 file is not a readable image: dog/broken.png (not an image" in err
    assert "--skip-bad-images" in err
    assert nothing_stored()
    code = main(["datasets", "add", str(path), "--task", "images", "--skip-bad-images", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    assert summary["task"] == "images" and summary["rows"] == 8 and summary["classes"] == {"cat": 4, "dog": 4}


def test_the_datasets_page_offers_images_for_a_zip_of_images() -> None:
    assert looks_like_images(make_zip(folders({"cat": 2, "dog": 2})), "pets.zip")
    assert not looks_like_images(make_zip({"reviews.csv": b"text,label\nok,a\n"}), "reviews.zip")
    assert not looks_like_images(b"text,label\nok,a\n", "reviews.csv")


def test_an_unlabelled_zip_from_the_cli_and_a_parquet_table(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inbox.zip"
    make_zip({f"{i}.png": picture(i) for i in range(5)}, path)
    assert main(["datasets", "add", str(path), "--task", "images", "--unlabelled"]) == 0
    assert "5 unlabelled images; define its labels" in capsys.readouterr().out
    parquet = pd.DataFrame({"path": [f"p/{i}.png" for i in range(6)], "y": ["a", "b"] * 3}).to_parquet()
    prepared = prepare(make_zip({**{f"p/{i}.png": picture(i) for i in range(6)}, "meta.parquet": parquet}))
    assert prepared.mapping["layout"] == "table" and prepared.frame["label"].value_counts().to_dict() == {"a": 3,
                                                                                                          "b": 3}


def test_profile_and_charts_read_the_stored_frame() -> None:
    frame = prepare(make_zip({**folders({"cat": 3, "dog": 4}), "dog/wide.png": picture(9, size=(40, 10))})).frame
    profile = images_profile(frame)
    assert profile["classes"] == {"dog": 5, "cat": 3} and set(profile["samples"]) == {"cat", "dog"}
    assert sorted(profile["aspects"].tolist()).count(4.0) == 1 and profile["duplicates"] == 0
    scatter = charts.size_scatter(profile["widths"], profile["heights"], profile["labels"])
    assert [t.name for t in scatter.data] == ["cat", "dog"] and sorted(scatter.data[1].x) == [12, 12, 12, 12, 40]
    histogram = charts.aspect_histogram(profile["aspects"])
    assert len(histogram.data[0].x) == 8
