"""Input hygiene: names with control characters are refused in one place (datasets, versions, runs, workers); a NUL
byte anywhere in a text file is refused; gzip and zip bombs are refused while streaming, in bounded memory."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from core.data import datasets as ds
from core.data.reading import inflate
from core.data.types import DatasetError
from core.data.versions import create_dataset_version
from core.errors import ProtolabError
from core.runs.fleet import build_options
from core.runs.jobs import start_run
from db import session_scope
from tests.test_datasets import nothing_stored, reviews
from tests.test_datasets_cli import cli, listed, write_reviews

HOSTILE = "a\nb\x1b[31mred"


def test_a_dataset_name_with_control_characters_is_refused(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = write_reviews(tmp_path / "r.csv")
    code, _, err = cli(capsys, "datasets", "add", str(path), "--name", HOSTILE, "--task", "classification")
    assert code == 1 and "cannot hold control characters" in err and "U+000A" in err and "U+001B" in err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err
    assert listed(capsys) == [] and nothing_stored()
    for name in ("tab\there", "bidi\u202eevil", "nul\x00"):
        with pytest.raises(DatasetError, match="control characters"):
            ds.check_name(name)
    assert ds.check_name("  café – reviews 2024  ") == "café – reviews 2024"  # ordinary names untouched
    code, out, _ = cli(capsys, "datasets", "add", str(path), "--name", "ok", "--task", "classification")
    assert code == 0
    with session_scope() as s, pytest.raises(DatasetError, match="control characters"):
        ds.rename_dataset(s, listed(capsys)[0]["id"], HOSTILE)
    code, out, _ = cli(capsys, "datasets", "list")
    assert code == 0 and "\x1b" not in out and "ok" in out


def test_version_run_and_worker_names_go_through_the_same_check(classification_dataset: int) -> None:
    with session_scope() as s, pytest.raises(DatasetError, match="control characters"):
        create_dataset_version(s, classification_dataset, [{"action": "exclude", "split": "train",
                                                            "text": "x", "label": "y"}], name=HOSTILE)
    with session_scope() as s, pytest.raises(ProtolabError, match="a run name cannot hold control characters"):
        start_run(s, dataset_id=classification_dataset, model_kind="tfidf", config={}, name=HOSTILE)
    with pytest.raises(ProtolabError, match="a worker name cannot hold control characters"):
        build_options(HOSTILE, "cpu", None)


def test_a_nul_byte_after_the_first_megabyte_is_refused() -> None:
    rows = "\n".join(f"{text},{label}" for text, label in reviews(40_000)) + "\n"
    assert len(rows) > 1_500_000
    data = ("text,label\n" + rows[:1_200_000] + "\x00" + rows[1_200_000:]).encode()
    with pytest.raises(DatasetError, match="looks like a binary file"):
        ds.read_table(data, "late-nul.csv")


def _gzip_bomb(gigabytes: float) -> bytes:
    """Concatenated gzip members of zeros (gzip reads them as one stream): ~1 KB per MB, made in milliseconds."""
    member = gzip.compress(bytes(16 * 1024**2), compresslevel=9)
    return member * int(gigabytes * 1024 / 16)


def test_a_gzip_bomb_is_refused_while_streaming_in_bounded_memory() -> None:
    bomb = _gzip_bomb(2.6)
    assert len(bomb) < 3 * 1024**2
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="compression bomb"):
            ds.read_table(bomb, "bomb.csv.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 1024**2, f"peak {peak / 1024**2:.0f} MB"


def test_a_zip_bomb_is_refused_while_streaming_in_bounded_memory() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("zeros.csv", "w", force_zip64=True) as member:
        for _ in range(12):
            member.write(bytes(16 * 1024**2))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="compression bomb"):
            ds.read_table(buffer.getvalue(), "bomb.zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 1024**2, f"peak {peak / 1024**2:.0f} MB"


def test_inflate_reads_no_more_than_the_cap() -> None:
    stream = io.BytesIO(bytes(512 * 1024**2))  # stands for a decompressing stream: counts what is read
    with pytest.raises(DatasetError, match="more than 50 times its size"):
        inflate(stream, 1024, "x.gz")
    assert stream.tell() <= 65 * 1024**2  # the 64 MB floor plus one chunk, not the 512 MB on offer


def test_real_compressed_tables_still_read() -> None:
    text = "text,label\n" + "\n".join(f"{t},{lab}" for t, lab in reviews(300)) + "\n"
    assert len(ds.read_table(gzip.compress(text.encode()), "r.csv.gz").frame) == 300
