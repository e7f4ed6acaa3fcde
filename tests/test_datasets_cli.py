"""`protolab datasets`: add (guessed and explicit columns), list, show --json, rm, demo; bad input exits
non-zero with one stderr line and leaves `datasets list` unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_reviews(path: Path, n: int = 30, encoding: str = "utf-8") -> Path:
    labels = ["positive", "negative", "neutral"]
    frame = pd.DataFrame({"sentiment": [labels[i % 3] for i in range(n)], "confidence": [0.5] * n,
                          "text": [f"café review {i}: the product was {labels[i % 3]}" for i in range(n)]})
    frame.to_csv(path, index=False, encoding=encoding)
    return path


def write_ratings(folder: Path) -> tuple[Path, Path]:
    rows = [{"user_id": u, "item_id": (u + k) % 12, "rating": (u + k) % 5 + 1, "timestamp": 1_700_000_000 + 60 * k}
            for u in range(10) for k in range(6)]
    pd.DataFrame(rows).to_csv(folder / "ratings.csv", index=False)
    pd.DataFrame({"item_id": range(12), "title": [f"Movie {i}" for i in range(12)],
                  "genres": ["Drama|Comedy"] * 12}).to_csv(folder / "movies.csv", index=False)
    return folder / "ratings.csv", folder / "movies.csv"


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    code, out, _ = cli(capsys, "datasets", "list", "--json")
    assert code == 0
    return json.loads(out)


def test_add_classification_with_guessed_columns_then_show_json(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write_reviews(tmp_path / "tweets.csv", encoding="cp1252")
    code, out, err = cli(capsys, "datasets", "add", str(path), "--name", "tweets", "--task", "classification",
                         "--split", "0.6,0.2,0.2", "--seed", "7")
    assert code == 0, err
    code, out, _ = cli(capsys, "datasets", "show", "tweets", "--json")
    shown = json.loads(out)
    assert shown["rows"] == 30 and shown["splits"] == {"train": 18, "validation": 6, "test": 6}
    assert shown["classes"] == {"positive": 10, "negative": 10, "neutral": 10}
    assert shown["encoding"] == "cp1252" and any("Windows-1252" in w for w in shown["warnings"])
    assert shown["mapping"]["text"] == "text" and shown["mapping"]["label"] == "sentiment"
    assert shown["mapping"]["split"]["seed"] == 7
    assert [d["name"] for d in listed(capsys)] == ["tweets"]


def test_add_interactions_with_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings, movies = write_ratings(tmp_path)
    code, _, err = cli(capsys, "datasets", "add", str(ratings), "--name", "ml", "--task", "interactions",
                       "--user-col", "user_id", "--item-col", "item_id", "--items", str(movies),
                       "--item-id-col", "item_id", "--title-col", "title")
    assert code == 0, err
    code, out, _ = cli(capsys, "datasets", "show", "ml", "--json")
    shown = json.loads(out)
    assert shown["users"] == 10 and shown["items"] == 12 and shown["interactions"] == 60
    assert shown["mapping"]["rating"] == "rating" and shown["mapping"]["timestamp"] == "timestamp"
    assert shown["catalogue_items"] == 12


@pytest.mark.parametrize(("content", "extra", "message"), [
    (b"", [], "the file is empty"),
    (b"text,label\n", [], "only a header row"),
    (bytes(range(256)) * 4, [], "not a table"),
    (b"text,label\nhello,positive\nbye,positive\nyo,positive\n", [], "at least 2 classes"),
    (None, ["--text-col", "body"], "column 'body' (mapped as text) is missing"),
    (None, ["--split", "0.5,0.5"], "three fractions"),
])
def test_bad_input_exits_non_zero_with_one_line_and_stores_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, extra: list[str],
        message: str) -> None:
    path = tmp_path / "bad.csv"
    if content is None:
        write_reviews(path)
    else:
        path.write_bytes(content)
    code, out, err = cli(capsys, "datasets", "add", str(path), "--name", "bad", "--task", "classification", *extra)
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("protolab: error: ") and message in err
    assert listed(capsys) == []


def test_missing_file_and_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "datasets", "add", str(tmp_path / "nope.csv"), "--name", "x", "--task",
                       "classification")
    assert code == 1 and "no such file" in err
    code, _, err = cli(capsys, "datasets", "show", "ghost")
    assert code == 1 and "no dataset named 'ghost'" in err


def test_same_content_twice_is_refused_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_reviews(tmp_path / "r.csv")
    assert cli(capsys, "datasets", "add", str(path), "--name", "a", "--task", "classification")[0] == 0
    code, _, err = cli(capsys, "datasets", "add", str(path), "--name", "b", "--task", "classification")
    assert code == 1 and "already stored as dataset 'a'" in err and "--allow-duplicate" in err
    assert cli(capsys, "datasets", "add", str(path), "--name", "b", "--task", "classification",
               "--allow-duplicate")[0] == 0
    assert len(listed(capsys)) == 2


def test_rm_asks_before_deleting_runs(classification_dataset: int, capsys: pytest.CaptureFixture[str]) -> None:
    from db import runs as run_queries
    from db import session_scope
    from db.enums import RunStatus, TaskKind

    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                     model_kind="tfidf", config={})
        run.status = RunStatus.COMPLETED
        run_id = run.id
    code, _, err = cli(capsys, "datasets", "rm", "tiny-sentiment")
    assert code == 1 and f"used by runs {run_id}" in err and "--yes" in err
    code, out, _ = cli(capsys, "datasets", "rm", "tiny-sentiment", "--yes")
    assert code == 0 and "deleted" in out
    assert listed(capsys) == []


def test_demo_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "datasets", "demo", "product-reviews", "--json")
    assert code == 0, err
    assert json.loads(out)["classes"] == {"positive": 140, "negative": 130, "neutral": 90}
    assert cli(capsys, "datasets", "demo", "movie-ratings")[0] == 0
    assert sorted(d["name"] for d in listed(capsys)) == ["movie-ratings", "product-reviews"]


def test_add_sweeps_old_orphan_folders(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import os
    import time

    from core.settings import load_settings

    root = load_settings().datasets_dir
    orphan = root / "4242"
    orphan.mkdir(parents=True)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    code, _, _ = cli(capsys, "datasets", "add", str(write_reviews(tmp_path / "r.csv")), "--name", "r",
                     "--task", "classification")
    assert code == 0 and not orphan.exists()
