"""Cold start of `streamlit run app.py`: seconds to HTTP 200 on /_stcore/health and to the Home page rendered.

Baseline in the same run: a bare Streamlit app (one st.title) started the same way, so the
ratio shows what Protolab itself adds. Target: < 3 s to health and Home rendered.
Usage: .venv/bin/python bench/startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402


def measure(script: Path, text: str, browser) -> tuple[float, float]:  # noqa: ANN001
    import os
    import subprocess

    port = free_port()
    home = Path(tempfile.mkdtemp())
    env = {**os.environ, "PROTOLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("DATABASE_URL", None)
    start = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("streamlit")), "run", str(script),
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        healthy = time.perf_counter() - start
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text(text).first.wait_for(timeout=60_000)
        rendered = time.perf_counter() - start
        page.close()
        return healthy, rendered
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    bare = Path(tempfile.mkdtemp()) / "bare_app.py"
    bare.write_text("import streamlit as st\nst.title('Bare baseline')\n")
    results: dict[str, list[tuple[float, float]]] = {"protolab": [], "bare": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.repeat):  # alternate so machine noise hits both alike
            results["bare"].append(measure(bare, "Bare baseline", browser))
            results["protolab"].append(measure(ROOT / "app.py", "Where it runs", browser))
        browser.close()
    print(f"{'app':<10} {'health (s)':>11} {'home rendered (s)':>18}   (median of {args.repeat})")
    med = {k: (statistics.median(h for h, _ in v), statistics.median(r for _, r in v)) for k, v in results.items()}
    for name, (health, rendered) in med.items():
        print(f"{name:<10} {health:>11.2f} {rendered:>18.2f}")
    print(f"ratio protolab/bare: health {med['protolab'][0] / med['bare'][0]:.2f}x, "
          f"rendered {med['protolab'][1] / med['bare'][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
