"""No command writes over Protolab's own data: `export -o ... --force`, `report -o`, `predict -o` refuse the data
folder, anything inside it, a folder holding it and the database file; `--force` replaces only an earlier export."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.cli import main
from core.export.destination import EXPORT_MARKER
from core.settings import load_settings
from tests.conftest import sentiment_frame


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a digest of its bytes: equal before and after means nothing was touched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("protolab.db-")}


def _export(run_id: int, out: Path, *extra: str) -> int:
    return main(["export", "--run", str(run_id), "--format", "skops", "-o", str(out), *extra])


def test_export_force_never_touches_the_data_folder(make_served_run, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_served_run("tfidf")
    home = load_settings().home
    before = _fingerprint(home)
    assert (home / "protolab.db").is_file() and (home / "runs" / str(run_id) / "model").is_dir()
    for target in (home, home / "runs" / str(run_id), home / "runs", home / "datasets", home / "new-inside",
                   tmp_path):  # tmp_path holds the data folder: replacing it would delete it
        assert _export(run_id, target, "--force") == 1, target
        err = capsys.readouterr().err
        assert "refusing to write" in err and "PROTOLAB_HOME" in err and len(err.strip().splitlines()) == 1
    assert _fingerprint(home) == before
    assert not (home / "new-inside").exists()


def test_export_force_replaces_only_an_earlier_export(make_served_run, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_served_run("tfidf")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert _export(run_id, mine, "--force") == 1
    assert "did not write" in capsys.readouterr().err and (mine / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "export"
    assert _export(run_id, out) == 0 and (out / EXPORT_MARKER).is_file()
    assert _export(run_id, out) == 1  # without --force an earlier export is kept too
    assert "not an empty folder" in capsys.readouterr().err
    (out / "stale.txt").write_text("from before")
    assert _export(run_id, out, "--force") == 0
    assert (out / "model.skops").is_file() and not (out / "stale.txt").exists() and (out / EXPORT_MARKER).is_file()
    link = tmp_path / "link"
    link.symlink_to(load_settings().home, target_is_directory=True)  # a link is followed, not trusted
    assert _export(run_id, link, "--force") == 1 and (load_settings().home / "protolab.db").is_file()


def test_report_and_predict_refuse_to_write_over_the_database(completed_classification_run: int, make_served_run,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    home = load_settings().home
    db = home / "protolab.db"
    before = _fingerprint(home)
    run = str(completed_classification_run)
    for target in (db, home / "runs" / run / "meta.json", home / "report.html"):
        assert main(["report", run, "-o", str(target)]) == 1
        assert "refusing to write inside Protolab's data" in capsys.readouterr().err
    assert _fingerprint(home) == before and not (home / "report.html").exists()
    assert main(["report", run, "-o", str(tmp_path / "r.html")]) == 0 and (tmp_path / "r.html").is_file()
    served = str(make_served_run("tfidf"))
    upload = tmp_path / "in.csv"
    sentiment_frame(n=10).to_csv(upload, index=False)
    before = _fingerprint(home)
    assert main(["predict", "--run", served, "--file", str(upload), "-o", str(db)]) == 1
    assert "refusing to write" in capsys.readouterr().err and _fingerprint(home) == before
    assert main(["predict", "--run", served, "--file", str(upload), "-o", str(tmp_path / "out.csv")]) == 0


def test_a_database_outside_the_data_folder_is_protected_too(completed_classification_run: int, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from db import dispose_engines

    elsewhere = tmp_path / "elsewhere.db"
    (load_settings().home / "protolab.db").rename(elsewhere)
    dispose_engines()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{elsewhere}")
    before = elsewhere.read_bytes()
    assert main(["report", str(completed_classification_run), "-o", str(elsewhere)]) == 1
    assert "refusing to write" in capsys.readouterr().err and elsewhere.read_bytes() == before
