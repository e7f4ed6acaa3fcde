"""Ready-to-paste code for calling `protolab serve`: the command that starts it and curl and Python (httpx)
calls for one run. Pure functions of the run and the server address, shown by the demo pages."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from core import settings
from core.metric_keys import DISPLAY_K

KEY_ENV = settings.API_KEY.name  # the snippets read the key from here: a key never sits in pasted code


@dataclass(frozen=True)
class Snippets:
    serve: str  # the shell command that serves the run
    curl: str
    python: str


def api_base_url() -> str:
    return settings.API_URL.get().rstrip("/")


def predict_snippets(run_id: int, texts: list[str], base_url: str | None = None) -> Snippets:
    """Label `texts` with classification run `run_id`."""
    return _snippets(run_id, "predict", {"texts": list(texts)}, base_url, _PREDICT_PRINT)


def recommend_snippets(run_id: int, user: str | None = None, like: list[str] | None = None, k: int = DISPLAY_K,
                       base_url: str | None = None) -> Snippets:
    """Top-k items of recommender run `run_id` for a known `user`, or for a visitor who likes `like`."""
    body: dict[str, object] = {"user": user} if user is not None else {"like": list(like or [])}
    return _snippets(run_id, "recommend", {**body, "k": int(k)}, base_url, _RECOMMEND_PRINT)


_PREDICT_PRINT = """for p in response.json()["predictions"]:
    print(p["label"], round(p["confidence"], 3), "(unsure)" if p["low_confidence"] else "")"""
_RECOMMEND_PRINT = """for item in response.json()["items"]:
    print(item["title"], round(item["score"], 3))"""


def _snippets(run_id: int, verb: str, body: dict[str, object], base_url: str | None, printing: str) -> Snippets:
    base = (base_url or api_base_url()).rstrip("/")
    url = f"{base}/v1/runs/{int(run_id)}/{verb}"
    payload = json.dumps(body, ensure_ascii=False)
    curl = "\n".join([
        f"curl -s -X POST {shlex.quote(url)} \\",
        f'  -H "Authorization: Bearer ${KEY_ENV}" \\',
        '  -H "Content-Type: application/json" \\',
        f"  -d {shlex.quote(payload)}",
    ])
    python = "\n".join([
        "import os",
        "",
        "import httpx",
        "",
        "response = httpx.post(",
        f"    {url!r},",
        f"    json={body!r},",
        f'    headers={{"Authorization": f"Bearer {{os.environ[{KEY_ENV!r}]}}"}},',
        "    timeout=30,",
        ")",
        "response.raise_for_status()",
        printing,
    ])
    address = urlsplit(base)
    host, port = address.hostname or "", address.port
    flags = "" if host in ("127.0.0.1", "localhost", "::1", "") else " --host 0.0.0.0"  # reached from elsewhere
    flags += f" --port {port}" if port and port != 8000 else ""
    serve = (f"protolab keys create --name my-app   # once; then export {KEY_ENV}=<the key it prints>\n"
             f"protolab serve --run {int(run_id)}{flags}")
    return Snippets(serve=serve, curl=curl, python=python)
