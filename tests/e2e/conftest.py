"""Real-browser fixtures: a real `streamlit run app.py` server and Debian's Chromium driven by Playwright.

On failure a screenshot and the server log are saved under test-artifacts/ (CI keeps them).
Never downloads a browser: Chromium comes from the system (`apt-get install chromium`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("PROTOLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("PROTOLAB_REQUIRE_E2E"):
        pytest.fail(f"Chromium is required here but {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    home: Path
    log_path: Path
    proc: subprocess.Popen
    env: dict[str, str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(home: Path, *, port: int | None = None, extra_env: dict[str, str] | None = None,
                 timeout_s: float = 60) -> Server:
    """Start `streamlit run app.py` against `home` and wait for its health endpoint."""
    port = port or free_port()
    env = {**os.environ, "PROTOLAB_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'protolab.db'}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"streamlit-{port}.log"
    streamlit = Path(sys.executable).with_name("streamlit")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(streamlit), "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}", home=home, log_path=log_path, proc=proc, env=env)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(server.url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"streamlit did not become healthy in {timeout_s}s:\n{server.log()[-3000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "home")
    yield srv
    srv.stop()


# Module scope, not session: a live sync_playwright keeps its event loop running on the main thread,
# and later tests that open their own sync_playwright (the report screenshot) would then refuse to.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name.replace("/", "_")[:100]
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception:
            pass
        srv = request.node.funcargs.get("server")
        if srv is not None:
            shutil.copy(srv.log_path, ARTIFACTS / f"{name}-server.log")
    context.close()


def wait_for_text(pg, text: str, timeout_ms: int = 30_000) -> None:  # noqa: ANN001
    pg.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout_ms)


def wait_until_drawn(pg, chart, target, timeout_s: float = 60.0) -> dict[str, float]:  # noqa: ANN001
    """Wait until no script run is going on, the Plotly `chart` has finished drawing, and `target` (an element
    inside it) sits still in view; return `target`'s bounding box. A click before that can be lost in a redraw."""
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_s * 1000)
    target.wait_for(state="visible", timeout=timeout_s * 1000)
    # Plotly keeps the promises of a redraw in gd._promises until it is done.
    pg.wait_for_function("gd => gd._fullLayout && !(gd._promises && gd._promises.length) && !gd._transitioning",
                         arg=chart.element_handle(), timeout=timeout_s * 1000)
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        target.scroll_into_view_if_needed()
        box = target.bounding_box()
        if box is not None and box == last:  # the same place twice in a row, a quarter second apart
            return box
        last = box
        time.sleep(0.25)
    raise AssertionError(f"{target} kept moving for {timeout_s:.0f} s")
