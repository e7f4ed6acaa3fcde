"""The two ASGI layers in front of the routes: the key check with its scope (before a byte of the body is read
or parsed, so a caller without a key hears 401, and one outside its scope 403, whatever it sent) and the body
reader (size cap, charset).

Both answer with the contract's error body themselves: they sit outside FastAPI's exception handlers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from email.message import Message
from typing import Any

from core.api.contract import error_response
from core.api.keys import KeyInfo, verify_key
from core.tasks import FILES_PATH, all_tasks
from db import read_scope

log = logging.getLogger(__name__)

KEY_CACHE_S = 5.0  # a verified key is trusted this long: a revoked key stops working within these seconds
_CACHE_MAX = 1000  # a flood of distinct keys must not grow memory without bound


def _run_call() -> re.Pattern[str]:
    """What the router would send to a run's endpoint (predict, recommend, a plugin task's verb): the run id
    segment as Starlette matches it ([^/]+), so a key limited to some runs cannot slip past with "+5" or "05"
    spellings that the route reads as run 5."""
    verbs = "|".join(re.escape(task.verb) for task in all_tasks())
    return re.compile(rf"^/v1/runs/([^/]+)/(?:{verbs})(?:/{FILES_PATH})?/?$")


class KeyGate:
    """/v1 needs `Authorization: Bearer KEY`, a valid unrevoked key; the key's info goes to scope["state"]."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._cache: dict[str, tuple[KeyInfo, float]] = {}
        self._run_call = _run_call()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        refusal, info = await self._check(headers.get(b"authorization", b"").decode("latin-1"))
        if refusal is not None:
            return await refusal(scope, receive, send)
        called = self._run_call.match(path)
        if called is not None and info is not None:  # its scope, before the body too
            digits = called.group(1)
            refused = info.refusal(int(digits) if digits.isascii() and digits.isdigit() else None)
            if refused is not None:
                return await error_response(403, *refused)(scope, receive, send)
        scope.setdefault("state", {})["api_key"] = info
        await self.app(scope, receive, send)

    async def _check(self, header: str) -> tuple[Any, KeyInfo | None]:
        challenge = {"WWW-Authenticate": "Bearer"}
        if not header:
            return error_response(401, "missing_key", "this API needs a key: send the header 'Authorization: "
                                  "Bearer KEY' (create a key with `protolab keys create --name NAME`)",
                                  challenge), None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return error_response(401, "bad_key", "the Authorization header must read 'Bearer KEY'", challenge), None
        cached = self._cache.get(token)
        if cached and cached[1] > time.monotonic():
            return None, cached[0]
        info = await asyncio.to_thread(_lookup, token)
        if info is None:
            self._cache.pop(token, None)
            return error_response(401, "bad_key", "this API key is not valid (mistyped, or revoked); see "
                                  "`protolab keys list`", challenge), None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (info, time.monotonic() + KEY_CACHE_S)
        return None, info


def _lookup(token: str) -> KeyInfo | None:
    with read_scope() as s:
        return verify_key(s, token)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 (from Content-Length, or while they stream in) and
    bodies that take over `timeout_s` with 408, and hand the routes UTF-8: a body in another declared charset
    is decoded here (JSON's parser reads UTF-8 only)."""

    def __init__(self, app: Any, limit: int, timeout_s: float = 10.0) -> None:
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        sent = "files" if headers.get(b"content-type", b"").startswith(b"multipart/") else "texts"
        too_big = error_response(413, "body_too_large", f"the request body is over {self.limit:,} bytes; send "
                                                        f"fewer or {'smaller' if sent == 'files' else 'shorter'} "
                                                        f"{sent} per request")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await too_big(scope, receive, send)
        # Read the body here, bounded, and hand it on whole. (Raising from inside receive() would reach
        # FastAPI's body parser, which turns any error into a vague 400.)
        body, more = b"", True
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while more:
            try:  # the whole body within the deadline: a client that declares 1000 bytes and sends 20 is answered
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                log.info("a request body from %s did not arrive within %g s", scope.get("client"), self.timeout_s)
                late = error_response(408, "body_timeout", f"the request body did not arrive within "
                                                           f"{self.timeout_s:g} s", {"Connection": "close"})
                return await late(scope, receive, send)
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        body, scope, refusal = _as_utf8(body, scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _as_utf8(body: bytes, scope: dict[str, Any]) -> tuple[bytes, dict[str, Any], Any]:
    """The body re-encoded as UTF-8 when Content-Type names another charset (scope's headers to match)."""
    raw = dict(scope.get("headers") or []).get(b"content-type")
    if not raw or not body:
        return body, scope, None
    message = Message()
    message["content-type"] = raw.decode("latin-1")
    charset = message.get_content_charset()
    if charset is None or charset.replace("-", "").replace("_", "") == "utf8":
        return body, scope, None
    try:
        text = body.decode(charset)
    except LookupError:
        return body, scope, error_response(422, "invalid_request", f"unknown charset {charset!r} in Content-Type; "
                                                                   "send JSON in UTF-8")
    except UnicodeError:
        return body, scope, error_response(422, "invalid_request", f"the body is not valid {charset}")
    body = text.encode("utf-8", "surrogatepass")
    message.set_param("charset", "utf-8")
    kept = [(k, v) for k, v in scope.get("headers") or [] if k not in (b"content-type", b"content-length")]
    kept += [(b"content-type", message["content-type"].encode("latin-1")),
             (b"content-length", str(len(body)).encode())]
    log.debug("decoded a %s body to UTF-8", charset)
    return body, {**scope, "headers": kept}, None
