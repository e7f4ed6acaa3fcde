"""The app shell under AppTest: every page renders on an empty and a seeded database, auth, presentation."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.auth import hash_password
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = {
    "pages/home.py": "Protolab",
    "pages/datasets.py": "Datasets",
    "pages/train.py": "Train",
    "pages/evaluate.py": "Evaluat",
    "pages/sentiment.py": "Sentiment",
    "pages/recommendations.py": "Recommend",
    "pages/tagging.py": "Tagging",
}


@pytest.fixture
def seeded(classification_dataset: int) -> int:
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                     model_kind="tfidf", config={"device": "cpu"}, name="<b>seed</b> run")
        run.status, run.progress = RunStatus.FAILED, 0.4
        run.error = "worker died"
        return run.id


def _titles(at: AppTest) -> str:
    return " ".join(t.value for t in at.title)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_database(page: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert PAGES[page] in _titles(at)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_seeded_database(page: str, seeded: int) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert PAGES[page] in _titles(at)


def test_home_shows_counts_recent_runs_device_and_a_redacted_database(seeded: int) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets"] == "1" and metrics["Runs"] == "1"
    text = " ".join(m.value for m in at.markdown)
    assert "#1" in text and "failed" in text
    assert "&lt;b&gt;" not in text  # markdown escaping is Streamlit's; no raw HTML is enabled on Home
    assert "Compute:" in text and "Database:" in text


def test_home_never_shows_a_database_password(monkeypatch: pytest.MonkeyPatch, protolab_home) -> None:  # noqa: ANN001
    from core.settings import redact_url

    url = "postgresql+psycopg://team:hunter2@db.internal:5432/protolab"
    assert "hunter2" not in redact_url(url)
    at = AppTest.from_file(str(Path(APP).parent / "pages/home.py"), default_timeout=60).run()
    assert "protolab.db" in " ".join(m.value for m in at.markdown)


def test_presentation_mode_shows_only_the_demo_pages() -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception
    assert "Sentiment" in _titles(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not routed at all
        at.switch_page("pages/train.py").run()


def test_password_gate_blocks_every_page_until_signed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTOLAB_PASSWORD_HASH", hash_password("open sesame"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "Protolab" in _titles(at) and not at.metric  # the login form, not the Home page
    at.text_input(key="login_password").input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error) and not at.metric
    at.text_input(key="login_password").input("open sesame")
    at.button[0].click().run()
    assert not at.exception and at.metric  # Home with its counts


def test_public_presentation_skips_the_password_for_demo_pages_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTOLAB_PASSWORD_HASH", hash_password("open sesame"))
    monkeypatch.setenv("PROTOLAB_PUBLIC_PRESENTATION", "1")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "1"
    at.run()
    assert "Sentiment" in _titles(at)
    at = AppTest.from_file(APP, default_timeout=60).run()  # the full app still asks
    assert not at.metric and at.text_input(key="login_password")


def test_home_start_up_path_does_not_import_torch_or_transformers() -> None:
    """A cold `streamlit run app.py` must serve Home without paying for torch or mlflow (seconds) on the way."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sklearn', 'mlflow') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_the_server_does_not_watch_files_by_default() -> None:
    """A watcher over .venv/ and data/ overflowed inotify and spun a core per open tab; `make dev` opts in."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"


def test_presentation_mode_stays_in_the_url_across_pages() -> None:
    # A browser's page switch drops the query string; the app must write ?present=1 back on every page,
    # or a reload (a new session) shows the audience the whole workbench.
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "1"
    at.run()
    at.query_params.clear()  # what clicking another demo tab sends
    # Rerun where it stands (the root): AppTest runs a page whose URL names its file (as every page's now does)
    # directly, without app.py, the way a fresh server's first request does; tests/e2e clicks the real tabs.
    at.run()
    assert not at.exception
    assert "Sentiment" in _titles(at)
    assert at.query_params.get("present") == "1"
