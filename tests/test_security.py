"""Hostile inputs: the password gate, paths from users, pickles in run folders, HTML, spreadsheets, secrets, fuzz.

Each test fails if its protection is removed: a payload that would run, a file written outside
its folder, a password printed, a parser that raises something other than a clear user error.
"""

from __future__ import annotations

import base64
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import tasks
from core.settings import load_settings, run_dir
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from db.models import utcnow

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
SCRIPT = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'


# --- the optional password -----------------------------------------------------------------------

def test_password_check_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import auth

    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    stored = auth.hash_password("correct horse")
    assert auth.verify_password("correct horse", stored)
    assert not auth.verify_password("wrong", stored)
    assert len(calls) == 2 and all(len(a) == len(b) == 32 for a, b in calls)


def test_hashes_are_salted_and_scrypt() -> None:
    from core.auth import hash_password, verify_password

    first, second = hash_password("same"), hash_password("same")
    assert first != second and first.startswith("scrypt$") and "same" not in first
    assert verify_password("same", first) and verify_password("same", second)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


MALFORMED = [
    "", "$", "plaintext-password", "scrypt", "scrypt$$$$$", "md5$1$1$1$c2FsdA==$YWJj",
    f"scrypt$16384$8$1${_b64(b'salt')}$",                     # an empty digest must not match an empty compare
    f"scrypt${'9' * 40}$8$1${_b64(b'salt')}${_b64(b'x' * 32)}",  # absurd cost: refused, not run out of memory
    f"scrypt$-1$8$1${_b64(b'salt')}${_b64(b'x' * 32)}", f"scrypt$16384$0$1${_b64(b'salt')}${_b64(b'x' * 32)}",
    f"scrypt$16384$8$1$not base64!$${_b64(b'x' * 32)}", f"scrypt$16384$8$1${_b64(b'salt')}$%%%",
    f"scrypt$1e3$8$1${_b64(b'salt')}${_b64(b'x' * 32)}", "scrypt$16384$8$1$\x00$\x00",
]


@pytest.mark.parametrize("stored", MALFORMED)
def test_malformed_hashes_never_match_and_never_raise(stored: str) -> None:
    from core.auth import verify_password

    assert verify_password("", stored) is False
    assert verify_password("password", stored) is False


@FUZZ
@given(password=st.text(max_size=30), stored=st.text(max_size=120))
def test_fuzzed_hashes_never_match_and_never_raise(password: str, stored: str) -> None:
    from core.auth import verify_password

    assert verify_password(password, stored) is False


def _routed_pages() -> list[str]:
    # app.py names the workshop pages itself and routes one demo page per task from the task registry.
    named = set(re.findall(r'st\.Page\(\s*"([^"]+\.py)"', (ROOT / "app.py").read_text()))
    demos = {demo.page for demo in tasks.demos() if demo.page.startswith("pages/")}  # not a test's toy task
    return sorted(named | demos)


def test_app_routes_every_page_file() -> None:
    # A page file app.py does not route would be reachable only by someone editing app.py; keep them in step.
    assert _routed_pages() == sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))


@pytest.mark.parametrize("page", _routed_pages())
def test_every_routed_page_is_behind_the_password(page: str, monkeypatch: pytest.MonkeyPatch,
                                                  classification_dataset: int) -> None:
    from streamlit.testing.v1 import AppTest

    from core.auth import hash_password

    monkeypatch.setenv("PROTOLAB_PASSWORD_HASH", hash_password("open sesame"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["🔒 Protolab"]
    assert at.text_input(key="login_password").value == ""
    shown = " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.metric, *at.dataframe, *at.info))
    assert "tiny-sentiment" not in shown  # nothing stored leaks past the gate


def test_xsrf_protection_is_never_switched_off() -> None:
    for config in ROOT.glob("**/.streamlit/config.toml"):
        if ".venv" in config.parts:
            continue
        text = config.read_text()
        assert not re.search(r"enableXsrfProtection\s*=\s*false", text, re.I), config
    makefile = (ROOT / "Makefile").read_text()
    assert "enableXsrfProtection" not in makefile and "enableCORS=false" not in makefile


# --- file names and folders come from ids, never from users or rows ------------------------------

EVIL_NAMES = ["../../etc/passwd", "..\\..\\x.csv", "/etc/shadow", "sub/../../../escape.csv", "a\x00b.csv",
              "C:\\Windows\\system32\\evil.csv", "....//....//x.csv", "%2e%2e%2fx.csv"]


@pytest.mark.parametrize("filename", EVIL_NAMES)
def test_uploaded_file_names_are_never_used_as_paths(filename: str, tmp_path: Path) -> None:
    from core.data.classification import prepare_classification
    from core.data.datasets import import_dataset, read_table
    from core.data.types import ClassificationMapping
    from tests.conftest import sentiment_frame

    home = load_settings().home
    before = {p for p in tmp_path.rglob("*")}
    data = sentiment_frame(60).to_csv(index=False).encode()
    table = read_table(data, filename=filename)
    prepared = prepare_classification(table, ClassificationMapping(text="text", label="label"))
    with session_scope() as s:
        # the file's name reaches no path; the dataset's own name must be a clean one (control characters refused)
        ds = import_dataset(s, prepared, name="upload " + filename.encode("unicode_escape").decode())
        ds_id, stored_at = ds.id, ds.storage_path
    folder = home / "datasets" / str(ds_id)
    assert Path(stored_at) == folder
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in created if p.is_file() and folder not in p.parents
               and not p.name.startswith("protolab.db")]
    assert outside == []
    assert not Path("/etc/passwd.parquet").exists()


def test_dataset_files_come_from_the_id_not_the_row(classification_dataset: int, tmp_path: Path) -> None:
    from core.data.storage import load_frame
    from db.datasets import get_dataset

    decoy = tmp_path / "decoy"
    decoy.mkdir()
    pd.DataFrame({"text": ["secret"], "label": ["x"], "split": ["train"]}).to_parquet(decoy / "data.parquet")
    with session_scope() as s:
        ds = get_dataset(s, classification_dataset)
        ds.storage_path = str(decoy)
        s.flush()
        frame = load_frame(ds)
    assert "secret" not in set(frame["text"])


def _completed_run_pointing_at(folder: Path, dataset_id: int, family: str = "tfidf") -> int:
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind=family,
                                     config={})
        run.status, run.finished_at, run.progress = RunStatus.COMPLETED, utcnow(), 1.0
        run.metrics, run.artifact_path = {"macro_f1": 0.9}, str(folder)
        return run.id


def test_a_run_row_pointing_elsewhere_is_not_followed(make_served_run, classification_dataset: int) -> None:  # noqa: ANN001
    from core.evaluation import predictions
    from core.text.serving import ArtifactError, load_classifier

    real = make_served_run("tfidf")
    assert load_classifier(real).predict(["great product"])  # the real one loads
    evil = _completed_run_pointing_at(run_dir(real), classification_dataset)
    with pytest.raises(ArtifactError):
        load_classifier(evil)
    with pytest.raises(predictions.ArtifactsMissing):
        predictions.load_predictions(evil, "test")


def _pickle_bomb(marker: Path) -> bytes:
    class Bomb:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))
    return pickle.dumps(Bomb())


@pytest.mark.parametrize("family,victim", [
    ("tfidf", "model.skops"),
    ("lstm", None),          # every weights file of the family is replaced
    ("transformer", None),
])
def test_a_malicious_pickle_in_a_run_folder_is_never_executed(family: str, victim: str | None, make_served_run,  # noqa: ANN001
                                                              tmp_path: Path) -> None:
    from core.text.serving import ArtifactError, load_classifier

    marker = tmp_path / "pwned"
    bomb = _pickle_bomb(marker)
    run_id = make_served_run(family)
    model = run_dir(run_id) / "model"
    targets = [model / victim] if victim else [p for p in model.iterdir()
                                               if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".skops"}]
    assert targets
    for path in targets:
        path.unlink()
    for name in (*(p.name for p in targets), "pytorch_model.bin", "model.pt", "model.pkl", "training_args.bin"):
        (model / name).write_bytes(bomb)
    with pytest.raises(ArtifactError):
        load_classifier(run_id, device="cpu")
    assert not marker.exists(), "a pickle in the run folder was executed"


def test_a_skops_file_with_untrusted_types_is_refused(make_served_run, tmp_path: Path) -> None:  # noqa: ANN001
    import skops.io as sio

    from core.text.serving import ArtifactError, load_classifier

    run_id = make_served_run("tfidf")
    path = run_dir(run_id) / "model" / "model.skops"
    sio.dump({"model": shutil.copyfileobj}, path)  # a function: never on a trusted list
    with pytest.raises(ArtifactError):
        load_classifier(run_id)


UNSAFE_LOADS = [
    (r"\bpickle\.loads?\(", "pickle.load"), (r"\bjoblib\.load\(", "joblib.load"), (r"\bdill\.", "dill"),
    (r"allow_pickle\s*=\s*True", "numpy allow_pickle"), (r"trust_remote_code\s*=\s*True", "trust_remote_code"),
    (r"\bsio\.load\([^)]*trusted\s*=\s*True", "skops trusted=True"), (r"\bpd\.read_pickle\(", "read_pickle"),
    (r"use_safetensors\s*=\s*False", "use_safetensors=False"),
]


def test_no_code_path_unpickles_model_files() -> None:
    offenders = []
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("pages/*.py"), *ROOT.glob("db/*.py"), ROOT / "app.py"]:
        text = path.read_text()
        for pattern, what in UNSAFE_LOADS:
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {what}")
        for call in re.finditer(r"torch\.load\(", text):
            args = text[call.end():call.end() + 300].split("\n)")[0]
            if "weights_only=True" not in args:
                offenders.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert offenders == []


# --- user text rendered as HTML is escaped --------------------------------------------------------

def test_explanations_escape_every_word() -> None:
    from core.text.explain import Explanation, render_explanation_html

    words = [SCRIPT, IMG, "fine", '"onmouseover="alert(2)']
    towards = ["pos", IMG, None, "pos"]  # label names are user data too (they end up in the tooltip)
    why = Explanation(words, [0.5, -0.3, 0.0, 0.1], "pos", 0.9, 1, towards, [0.5, 0.3, 0.0, 0.1], 4)
    html = render_explanation_html(why, {"pos": "#16a34a", IMG: "#dc2626"})
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html
    assert 'onmouseover="alert' not in html


def test_reports_escape_names_texts_labels_configs_and_comments() -> None:
    import numpy as np

    from core.data.storage import write_dataset
    from core.export.report import build_report
    from db.enums import ReviewVerdict
    from tests.conftest import sentiment_frame, store_completed_run, with_splits

    frame = sentiment_frame(80)
    frame["text"] = [f"{t} {SCRIPT}" if i % 3 == 0 else t for i, t in enumerate(frame["text"])]
    frame["label"] = frame["label"].map({"positive": f"pos{IMG}", "negative": "<b>neg</b>"})
    frame = with_splits(frame)
    with session_scope() as s:
        ds_id = write_dataset(s, name=f"data {SCRIPT}", task=TaskKind.CLASSIFICATION, frame=frame,
                              mapping={"text": "text", "label": "label"},
                              stats={"classes": {f"pos{IMG}": 40, "<b>neg</b>": 40}}).id
    labels = sorted(frame["label"].unique())
    preds = {}
    for split in ("validation", "test"):
        part = frame[frame["split"] == split].reset_index(drop=True)
        wrong = [labels[1 - labels.index(x)] if i % 4 == 0 else x for i, x in enumerate(part["label"])]
        proba = [[0.8, 0.2] if p == labels[0] else [0.2, 0.8] for p in wrong]
        preds[split] = pd.DataFrame({"text": part["text"], "label": part["label"], "pred": wrong,
                                     "confidence": np.full(len(part), 0.8), "proba": proba})
    run_id = store_completed_run(ds_id, labels, preds, name=f"run {SCRIPT}", config={"note": IMG, "epochs": 1})
    with session_scope() as s:
        run_queries.add_review(s, run_id, reviewer=f"eve {SCRIPT}", verdict=list(ReviewVerdict)[0],
                               comment=f"looks fine {IMG}")
    html = build_report([run_id])
    body = html.split("</head>", 1)[1]  # plotly.js itself is inline in the head
    for payload in ("<script>alert", "<img src=x", "<b>neg</b>", "</script><script>"):
        assert payload not in body, payload
    assert "&lt;script&gt;alert(" in body and "&lt;img src=x onerror=" in body


# --- spreadsheet exports --------------------------------------------------------------------------

TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]




@FUZZ
@example(cells=["\r"])
@given(cells=st.lists(st.one_of(st.text(max_size=12), st.builds(lambda t, s: t + s, st.sampled_from(TRIGGERS),
                                                                   st.text(max_size=12))), min_size=1, max_size=8))
def test_exported_cells_never_start_a_formula(cells: list[str]) -> None:
    import csv
    import io

    from core.data.spreadsheet import to_safe_csv

    frame = pd.DataFrame({"=HYPERLINK(\"http://x\")": cells, "n": range(len(cells))})
    text = to_safe_csv(frame).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for cell in row[:1]:
            assert not cell.startswith(tuple(TRIGGERS)), repr(cell)
    # Nothing else changes: a neutralised cell is the original behind one quote.
    assert [r[0] for r in rows[1:]] == [("'" + c) if c.startswith(tuple(TRIGGERS)) else c for c in cells]


def test_a_line_break_inside_a_cell_cannot_start_a_formula_on_a_new_row() -> None:
    # Spreadsheets split rows on a bare CR too: an unquoted "x\r=cmd" cell becomes a row starting "=cmd".
    from core.data.spreadsheet import to_safe_csv

    text = to_safe_csv(pd.DataFrame({"text": ["x\r=1+2", "y\n+SUM(1)", "ok"]}))
    text = text.decode("utf-8-sig")
    fields, quoted = [], False
    for ch in text:  # split the way a spreadsheet does: CR or LF outside quotes ends a row
        if ch == '"':
            quoted = not quoted
        if ch in "\r\n" and not quoted:
            fields.append("")
        elif fields:
            fields[-1] += ch
        else:
            fields.append(ch)
    rows = [f for f in fields if f]
    assert all(not r.lstrip('"').startswith(tuple(TRIGGERS)) for r in rows), rows


def test_batch_scoring_results_are_formula_safe(make_served_run) -> None:  # noqa: ANN001
    from core.text import batch_scoring
    from core.text.serving import load_classifier

    frame = pd.DataFrame({"text": ["=cmd|' /C calc'!A0", "+SUM(1,2)", "@evil", "-2+3", "great product"]})
    classifier = load_classifier(make_served_run("tfidf"))
    result = batch_scoring.score_frame(classifier, frame, "text")
    out = batch_scoring.results_csv(result).decode("utf-8-sig")
    for line in out.splitlines()[1:]:
        assert not line.lstrip('"').startswith(tuple(TRIGGERS)), line


# --- secrets never printed -----------------------------------------------------------------------

SECRET = "hunter2-s3cret"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_database_errors_never_print_the_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://team:{SECRET}@127.0.0.1:{_closed_port()}/protolab"
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "core.cli", "runs", "list"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert SECRET not in proc.stdout + proc.stderr
    assert "***" in proc.stderr


def test_cli_database_errors_are_one_line() -> None:
    url = f"postgresql+psycopg://team:{SECRET}@127.0.0.1:{_closed_port()}/protolab"
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "core.cli", "runs", "list"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_worker_logs_never_hold_the_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://team:{SECRET}@127.0.0.1:{_closed_port()}/protolab"
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "core.runs.worker", "1"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.postgres
def test_home_page_never_shows_the_database_password(fresh_postgres_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    # The test server trusts every local connection, so any password works and can be checked for.
    url = fresh_postgres_url.replace("protolab@", f"protolab:{SECRET}@")
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    shown = " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.code, *at.error, *at.info))
    assert "Database:" in shown and "postgresql" in shown
    assert SECRET not in shown


# --- fuzzing every parser of user input ---------------------------------------------------------------

CSV_BITS = st.sampled_from(["text,label\n", "a;b;c\n", "\"", ",", "\n", "\r\n", "\t", "=1+2", "\x00", "é", "\ufeff",
                            "[{\"a\": 1}]", "{", "PK\x03\x04", "\x1f\x8b", "PAR1", "1,2,3\n", "x" * 50, "😀"])


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.lists(CSV_BITS, max_size=30).map(lambda p: "".join(p).encode())),
       filename=st.sampled_from(["data.csv", "data.tsv", "x.json", "x.xlsx", "x.zip", "x.gz", "../../x.csv", ""]))
@example(data=b'"\x01\n"\x01', filename="data.csv")  # a quoted line break in the header put one in the error
def test_dataset_upload_parser_only_raises_user_errors(data: bytes, filename: str) -> None:
    from core.data.datasets import read_table
    from core.errors import ProtolabError

    try:
        table = read_table(data, filename=filename)
    except ProtolabError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert table is not None


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.lists(CSV_BITS, max_size=30).map(lambda p: "".join(p).encode())),
       filename=st.sampled_from(["batch.csv", "batch.txt", "b.xlsx", "b.json", "b.parquet", "../b.csv"]),
       column=st.one_of(st.none(), st.sampled_from(["text", "a", "", "label", "0"])))
def test_batch_scoring_parser_only_raises_user_errors(data: bytes, filename: str, column: str | None) -> None:
    from core.errors import ProtolabError
    from core.text import batch_scoring

    try:
        frame = batch_scoring.read_upload(data, filename)
        batch_scoring.check_text_column(frame, column)
    except ProtolabError as exc:
        assert str(exc)
        return


CLI_WORDS = st.sampled_from(["runs", "list", "show", "cancel", "resume", "rm", "train", "datasets", "eval", "report",
                             "info", "passwd", "predict", "--json", "--dataset", "--model", "--epochs", "-1", "0",
                             "999", "lstm", "tfidf", "bpr", "nan", "--help", "--limit", "x", "", "--", "=", "\x00",
                             "--device", "cuda:7", "--gpus", "1e9", "../../etc/passwd", "--wait"])


@FUZZ
@given(argv=st.lists(st.one_of(CLI_WORDS, st.text(max_size=8)), max_size=6))
def test_cli_never_crashes_on_random_arguments(argv: list[str], capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from core import cli
    from core.runs import jobs

    # Nothing random may start a real worker (a valid `train` on an empty database fails anyway).
    monkeypatch.setattr(jobs, "launch_worker", lambda *a, **k: pytest.fail("a worker was launched"))
    monkeypatch.setattr("getpass.getpass", lambda *a, **k: "pw")
    if "--wait" in argv or ("passwd" in argv and "--help" not in argv):
        argv = [a for a in argv if a not in ("--wait", "passwd")]
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2), (argv, exc.code)
        return
    finally:
        err = capsys.readouterr().err
    assert code in (0, 1, 2), (argv, code)
    if code == 1:
        assert err.strip() and len(err.strip().splitlines()) == 1, (argv, err)
        assert "Traceback" not in err


def test_report_json_for_config_is_plain() -> None:
    # The report's config table shows repr() of nested values; make sure it cannot smuggle markup.
    from core.charts.html import dict_table

    html = dict_table({"nested": {"k": SCRIPT}, "list": [IMG]})
    assert "<script" not in html and "<img" not in html
