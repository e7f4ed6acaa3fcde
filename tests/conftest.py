"""Shared fixtures: every test gets its own PROTOLAB_HOME and SQLite file (never :memory:)."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from db import dispose_engines, session_scope
from db.enums import TaskKind

# Tests never reach for the hub. Set for the whole session as well as per test: huggingface_hub reads these once,
# when it is first imported, and a test module imports it at collection, before any fixture has run; without
# this an unknown model id waits on network retries instead of failing at once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


# --- the order files run in -------------------------------------------------------------
# `make test` runs two xdist workers that take whole files (`--dist loadfile`) from one queue. xdist's own order, most
# tests first, put the single-test journeys (25-50 s each) last, and one worker ran them while the other sat idle:
# the suite's last 4 % took 2.5 of its 12 minutes. Longest first (the LPT rule) ends the two workers together. The
# seconds come from a clean-clone run (`make durations` records them); a file not in the record yet is costed at
# its test count times the recorded median seconds per test. The Makefile turns xdist's reordering off.
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", action="store_true",
                     help=f"write each test file's seconds (set-up, call, tear-down) to {DURATIONS.name}")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(files: dict[str, int], recorded: dict[str, float]) -> list[str]:
    """Test files (path -> number of tests) in the order to run them: the longest recorded or estimated first."""
    per_test = [recorded[f] / n for f, n in files.items() if f in recorded and n]
    seconds_per_test = statistics.median(per_test) if per_test else 1.0
    return sorted(files, key=lambda f: -recorded.get(f, files[f] * seconds_per_test))  # stable: ties keep order


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    recorded = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(_file_of(item.nodeid), []).append(item)  # a file's own tests keep their order
    order = longest_first({f: len(tests) for f, tests in by_file.items()}, recorded)
    items[:] = [item for f in order for item in by_file[f]]


_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[_file_of(report.nodeid)] = _seconds.get(_file_of(report.nodeid), 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Only the controller writes: an xdist worker sees its own files only. A targeted run updates its files' entries.
    if not session.config.getoption("--record-durations") or hasattr(session.config, "workerinput"):
        return
    recorded = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    recorded.update({f: round(s, 1) for f, s in _seconds.items()})
    root = session.config.rootpath
    kept = {f: s for f, s in sorted(recorded.items()) if (root / f).is_file()}  # drop files since removed
    DURATIONS.write_text(json.dumps(kept, indent=0) + "\n")


@pytest.fixture(autouse=True)
def protolab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PROTOLAB_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{home / 'protolab.db'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("PROTOLAB_MEASURE_AT_START", "0")  # no worker-like launches from every AppTest of app.py
    monkeypatch.delenv("PROTOLAB_PASSWORD_HASH", raising=False)
    dispose_engines()
    yield home
    from core.runs.jobs import stop_watchdogs

    stop_watchdogs()  # a page under AppTest started one for this test's database
    dispose_engines()
    # Every test has a fresh database, so run ids repeat across tests: figures a page cached for run 1 of an
    # earlier test must not be served for run 1 of the next (in the product a run id is never reused).
    if "streamlit" in sys.modules:
        import streamlit as st

        st.cache_data.clear()
        st.cache_resource.clear()



@pytest.fixture(autouse=True)
def restore_main_module() -> Iterator[None]:
    """Put back the `__main__` module a test found. AppTest runs a page as `__main__` and leaves it there, and a
    multiprocessing "spawn" child re-runs `__main__` from its file before its target: a later test's children then
    ran pages/recommendations.py and died (exit 1, 1 in test_db's two-writer test, only when an AppTest of that page
    had run before it in the same xdist process)."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main

# --- small generated data -------------------------------------------------------------

POSITIVE = ["great", "love", "excellent", "wonderful", "fantastic", "happy", "perfect", "amazing"]
NEGATIVE = ["awful", "hate", "terrible", "broken", "horrible", "sad", "useless", "worst"]
FILLER = ["the", "product", "it", "was", "this", "really", "service", "today", "my", "order"]


def sentiment_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A tiny, clearly learnable two-class sentiment set (text, label)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        cue = POSITIVE if label == "positive" else NEGATIVE
        words = rng.sample(FILLER, 4) + rng.sample(cue, 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


def with_splits(frame: pd.DataFrame, seed: int = 0, fractions: tuple[float, float] = (0.7, 0.15)) -> pd.DataFrame:
    """Stratified-by-position split good enough for fixtures (rows alternate labels)."""
    n = len(frame)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train, n_val = int(n * fractions[0]), int(n * fractions[1])
    split = ["train"] * n
    for rank, idx in enumerate(order):
        split[idx] = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
    return frame.assign(split=split)


def interactions_frame(n_users: int = 40, n_items: int = 30, per_user: int = 8, seed: int = 0) -> pd.DataFrame:
    """Users in two taste groups (even items vs odd items), with timestamps."""
    rng = random.Random(seed)
    rows = []
    for u in range(n_users):
        pool = [i for i in range(n_items) if i % 2 == u % 2]
        for t, item in enumerate(rng.sample(pool, per_user)):
            rows.append({"user": f"u{u}", "item": f"i{item}", "rating": float(rng.randint(3, 5)),
                         "timestamp": 1_700_000_000 + u * 1000 + t})
    return pd.DataFrame(rows)


def items_frame(n_items: int = 30) -> pd.DataFrame:
    return pd.DataFrame({"item": [f"i{i}" for i in range(n_items)],
                         "title": [f"{'Space' if i % 2 else 'Garden'} Movie {i}" for i in range(n_items)],
                         "text": ["sci-fi space adventure" if i % 2 else "gardening drama" for i in range(n_items)]})


@pytest.fixture
def classification_dataset() -> int:
    """A stored classification dataset; returns its id."""
    from core.data.storage import write_dataset

    frame = with_splits(sentiment_frame())
    with session_scope() as s:
        ds = write_dataset(s, name="tiny-sentiment", task=TaskKind.CLASSIFICATION, frame=frame,
                           mapping={"text": "text", "label": "label"},
                           stats={"classes": frame["label"].value_counts().to_dict()})
        return ds.id


def store_interactions(name: str = "tiny-interactions", *, seed: int = 1, catalogue: bool = True) -> int:
    """The tiny interactions (a quarter of them test, at random), stored with or without the item catalogue."""
    from core.data.storage import write_dataset

    frame = interactions_frame()
    rng = random.Random(seed)
    frame["split"] = ["test" if rng.random() < 0.25 else "train" for _ in range(len(frame))]
    mapping = {"user": "user", "item": "item", **({"rating": "rating", "timestamp": "timestamp"} if catalogue else {})}
    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.INTERACTIONS, frame=frame, mapping=mapping,
                             items=items_frame() if catalogue else None).id


@pytest.fixture
def interactions_dataset() -> int:
    """A stored interactions dataset with an item catalogue; returns its id."""
    return store_interactions()


# --- a real PostgreSQL server, started by the tests -------------------------------------

def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a throwaway PostgreSQL on 127.0.0.1 (initdb + pg_ctl) for the session."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("PROTOLAB_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required here but missing")
        pytest.skip("PostgreSQL server binaries not installed (Debian: apt-get install postgresql)")
    # Not under pytest's tmp folder: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="protolab-pg-"))
    data, port = root / "data", _free_port()
    # initdb refuses to run as root; the Debian package brings a `postgres` user for that.
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "protolab", "-A", "trust",
                           "--no-sync"], capture_output=True, text=True)
    if init.returncode != 0:
        pytest.fail(f"initdb failed: {init.stderr.strip()[-500:]}")
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -h 127.0.0.1 -k {root} -F", "start"], check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg://protolab@127.0.0.1:{port}/postgres"
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                import psycopg

                psycopg.connect(f"host=127.0.0.1 port={port} user=protolab dbname=postgres").close()
                break
            except Exception:
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the shared server for one test."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    base = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    dispose_engines()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- team mode: the fleet's database and its daemons (tests/test_fleet*.py; helpers in tests/fleet_support.py) ---

@pytest.fixture
def pg_fleet(fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's database on the PostgreSQL server, migrated; the data folder is the test's PROTOLAB_HOME."""
    from core import settings
    from db import init_db
    from tests.fleet_support import STALE_S

    monkeypatch.setenv("DATABASE_URL", fresh_postgres_url)
    monkeypatch.setenv(settings.WORKER_STALE_AFTER_S.name, str(STALE_S))
    dispose_engines()
    init_db()
    return fresh_postgres_url


@pytest.fixture
def daemons(protolab_home: Path) -> Iterator:
    """`protolab worker` processes a test starts (tests.fleet_support.Daemons), all stopped at its end."""
    from tests.fleet_support import Daemons

    d = Daemons(protolab_home)
    yield d
    d.stop_all()


# --- completed runs with artifacts, for evaluation tests (issue 5) -------------------------

def _write_run_artifacts(run_id: int, labels: list[str], preds: dict[str, pd.DataFrame], dataset_id: int) -> None:
    import json

    from core.settings import run_dir

    folder = run_dir(run_id)
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"family": "tfidf", "labels": labels, "max_length": 128,
                                                  "model_id": None, "dataset_id": dataset_id}))
    for split, frame in preds.items():
        frame.to_parquet(folder / "predictions" / f"{split}.parquet", index=False)


def sklearn_predictions(dataset_id: int, seed: int = 0) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """Real TF-IDF + logistic regression predictions on a stored dataset, in the prediction-file layout."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from core.data.storage import load_split
    from db.datasets import get_dataset

    with session_scope() as s:
        ds = get_dataset(s, dataset_id)
        splits = {name: load_split(ds, name) for name in ("train", "validation", "test")}
    vec = TfidfVectorizer()
    x_train = vec.fit_transform(splits["train"]["text"])
    clf = LogisticRegression(C=0.3 if seed else 1.0, max_iter=200).fit(x_train, splits["train"]["label"])
    labels = [str(c) for c in clf.classes_]
    preds = {}
    for split in ("validation", "test"):
        frame = splits[split]
        proba = clf.predict_proba(vec.transform(frame["text"]))
        preds[split] = pd.DataFrame({"text": frame["text"], "label": frame["label"].astype(str),
                                     "pred": [labels[i] for i in proba.argmax(axis=1)],
                                     "confidence": proba.max(axis=1), "proba": [list(map(float, p)) for p in proba]})
    return labels, preds


def store_lstm_runs(dataset_id: int, *epochs: int) -> list[int]:
    """Completed LSTM runs that differ only in their epochs (learning rate 0.1 each): what Compare tells apart."""
    labels, preds = sklearn_predictions(dataset_id)
    return [store_completed_run(dataset_id, labels, preds, model_kind="lstm",
                                config={"epochs": n, "learning_rate": 0.1}) for n in epochs]


def store_completed_run(dataset_id: int, labels: list[str], preds: dict[str, pd.DataFrame], *,
                        model_kind: str = "tfidf", name: str | None = None, config: dict | None = None,
                        epochs: int = 2, task: str = TaskKind.CLASSIFICATION) -> int:
    """A completed classification run row (metrics as the worker stores them) plus its artifact folder."""
    import numpy as np

    from core.evaluation.metrics import classification_report, headline
    from db import runs as run_queries
    from db.enums import RunStatus
    from db.models import utcnow

    reports = {split: classification_report(f["label"], f["pred"], labels, np.asarray(f["proba"].tolist()))
               for split, f in preds.items()}
    test = reports.get("test") or next(iter(reports.values()))
    metrics = {**headline(test), "split": "test", "labels": labels, "reports": reports, "best_epoch": epochs,
               "train_samples_per_s": 1000.0, "train_time_s": 1.5, "device": "cpu"}
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=task, model_kind=model_kind,
                                     config=config or {"epochs": epochs, "learning_rate": 0.001, "seed": 0},
                                     name=name, device="cpu")
        run.status, run.metrics, run.progress = RunStatus.COMPLETED, metrics, 1.0
        run.started_at, run.finished_at = utcnow(), utcnow()
        points = [{"name": "train_loss", "value": 1.0 / (i + 1), "step": i, "split": "train"} for i in range(6)]
        for epoch in range(1, epochs + 1):
            points += [{"name": n, "value": v, "step": epoch * 3, "epoch": float(epoch), "split": "validation"}
                       for n, v in (("loss", 1.0 / epoch), ("accuracy", 0.5 + 0.1 * epoch),
                                    ("macro_f1", 0.4 + 0.1 * epoch))]
        run_queries.add_metric_points(s, run.id, points)
        run_id = run.id
    _write_run_artifacts(run_id, labels, preds, dataset_id)
    return run_id


def store_ranking_run(dataset_id: int, *, model_kind: str = "itemknn", scale: float = 1.0,
                      name: str | None = None) -> int:
    """A completed recommender run with hand-made ranking metrics at K = 1, 5, 10, 20."""
    from db import runs as run_queries
    from db.enums import RunStatus
    from db.models import utcnow

    by_k = {str(k): {"ndcg": 0.1 * scale * k ** 0.5, "precision": 0.3 * scale / k ** 0.3,
                     "recall": min(1.0, 0.05 * scale * k), "map": 0.08 * scale * k ** 0.4,
                     "hit_rate": min(1.0, 0.2 * scale * k ** 0.5), "coverage": min(1.0, 0.02 * k)}
            for k in (1, 5, 10, 20)}
    ten = by_k["10"]
    metrics = {"ndcg@10": ten["ndcg"], "precision@10": ten["precision"], "recall@10": ten["recall"],
               "map@10": ten["map"], "hit_rate@10": ten["hit_rate"], "coverage": ten["coverage"], "k": 10,
               "by_k": by_k, "train_time_s": 0.4, "protocol": "leave-last-out per user"}
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.INTERACTIONS, model_kind=model_kind,
                                     config={"k": 10, "neighbours": int(20 * scale)}, name=name, device="cpu")
        run.status, run.metrics, run.progress = RunStatus.COMPLETED, metrics, 1.0
        run.started_at, run.finished_at = utcnow(), utcnow()
        return run.id


@pytest.fixture
def completed_classification_run(classification_dataset: int) -> int:
    """A completed TF-IDF-like run (real scikit-learn predictions) with metrics, points and artifacts."""
    labels, preds = sklearn_predictions(classification_dataset)
    return store_completed_run(classification_dataset, labels, preds, name="baseline")


# --- served classification runs (sentiment demo, predict CLI) ----------------------------

@pytest.fixture(scope="session")
def tiny_model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved model per family, built once: MiniLM with a 2-label head (untrained), a tiny trained LSTM
    and a trained TF-IDF baseline, all on sentiment_frame()."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from core.text.lstm import LSTMConfig, build_lstm, save_lstm
    from core.text.pretrained import load_tokenizer, resolve_model_path
    from core.text.tfidf import save_tfidf, train_tfidf

    root, labels = tmp_path_factory.mktemp("served-models"), ["negative", "positive"]
    frame = sentiment_frame(n=200, seed=3)
    tokenizer = load_tokenizer()
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path(None), num_labels=2, id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)})
    model.save_pretrained(root / "transformer")
    tokenizer.save_pretrained(root / "transformer")
    torch.manual_seed(0)
    lstm = build_lstm(tokenizer.vocab_size, 2, tokenizer.pad_token_id, LSTMConfig(embed_dim=32, hidden_dim=32,
                                                                                 dropout=0.0))
    optimizer = torch.optim.AdamW(lstm.parameters(), lr=1e-2)
    y = torch.tensor([labels.index(x) for x in frame.label])
    for _ in range(4):
        for start in range(0, len(frame), 16):
            batch = tokenizer(list(frame.text[start:start + 16]), padding=True, return_tensors="pt")
            loss = lstm(**batch, labels=y[start:start + 16]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    save_lstm(lstm.eval(), root / "lstm", tokenizer, labels=labels)
    save_tfidf(train_tfidf(list(frame.text), list(frame.label)), root / "tfidf")
    return {"transformer": root / "transformer", "lstm": root / "lstm", "tfidf": root / "tfidf"}


@pytest.fixture
def make_served_run(classification_dataset: int, tiny_model_folders: dict[str, Path]):
    """Factory: a completed classification run of a family whose run_dir holds model/ and meta.json."""
    import json

    from core.settings import run_dir
    from db import runs as run_queries
    from db.enums import RunStatus
    from db.models import utcnow

    def make(family: str = "tfidf", macro_f1: float = 0.9, max_length: int = 32) -> int:
        with session_scope() as s:
            run = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                         model_kind=family, config={"model_id": None, "max_length": max_length})
            run.status, run.finished_at, run.progress = RunStatus.COMPLETED, utcnow(), 1.0
            run.metrics = {"accuracy": macro_f1, "macro_f1": macro_f1}
            run_id = run.id
        folder = run_dir(run_id)
        folder.mkdir(parents=True)
        shutil.copytree(tiny_model_folders[family], folder / "model")
        (folder / "meta.json").write_text(json.dumps({
            "family": family, "labels": ["negative", "positive"], "max_length": max_length,
            "model_id": "sentence-transformers/all-MiniLM-L6-v2", "dataset_id": classification_dataset}))
        return run_id

    return make


@pytest.fixture(scope="session")
def tiny_text_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer random-init BERT (hidden size 32) with the bundled MiniLM's tokenizer, saved as a Hugging Face
    folder: what `--model-id` takes for a test that must train a Transformer, an LSTM (its embeddings start from
    this) or SetFit (sentence-transformers adds mean pooling) end to end, in seconds instead of minutes."""
    from transformers import BertConfig, BertModel

    from core.text.pretrained import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny-text-encoder")
    tokenizer = load_tokenizer()
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str | None]]]:
    """Worker-like launches (core.runs.timing.cold_start: a worker's start-up, a model's cold load) recorded instead of
    run, each seconds of a core: every one says start-up 3 s, a load 4.2 s."""
    from core.runs import calibration, timing
    from core.text import estimate as text_estimate

    launched: list[tuple[str, str | None]] = []

    def fresh_process(kind: str, load: str | None = None, arg: str = "") -> timing.ColdStart:  # as the child would
        launched.append((kind, load))
        calibration.remember(timing.startup_key(kind), seconds=3.0)
        return timing.ColdStart(startup_s=3.0, load_s=4.2 if load else None)

    monkeypatch.setattr(timing, "cold_start", fresh_process)
    monkeypatch.setattr(text_estimate, "cold_start", fresh_process)
    timing.startup_seconds.cache_clear()  # measured once per process: earlier tests' figures are not this home's
    yield launched
    timing.startup_seconds.cache_clear()
