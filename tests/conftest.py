"""Shared fixtures: every test gets its own PROTOLAB_HOME and SQLite file (never :memory:)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from db import dispose_engines, session_scope
from db.models import TaskKind


@pytest.fixture(autouse=True)
def protolab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PROTOLAB_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{home / 'protolab.db'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("PROTOLAB_PASSWORD_HASH", raising=False)
    dispose_engines()
    yield home
    dispose_engines()


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
    from core.storage import write_dataset

    frame = with_splits(sentiment_frame())
    with session_scope() as s:
        ds = write_dataset(s, name="tiny-sentiment", task=TaskKind.CLASSIFICATION, frame=frame,
                           mapping={"text": "text", "label": "label"},
                           stats={"classes": frame["label"].value_counts().to_dict()})
        return ds.id


@pytest.fixture
def interactions_dataset() -> int:
    """A stored interactions dataset with an item catalogue; returns its id."""
    from core.storage import write_dataset

    frame = interactions_frame()
    rng = random.Random(1)
    frame["split"] = ["test" if rng.random() < 0.25 else "train" for _ in range(len(frame))]
    with session_scope() as s:
        ds = write_dataset(s, name="tiny-interactions", task=TaskKind.INTERACTIONS, frame=frame,
                           mapping={"user": "user", "item": "item", "rating": "rating", "timestamp": "timestamp"},
                           items=items_frame())
        return ds.id


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
