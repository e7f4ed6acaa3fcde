"""How `protolab serve` runs uvicorn so that slow or idle clients cannot hold it: a deadline for a request's
headers, a cap on their size, a keep-alive limit, a cap on open connections and one on requests at once.

uvicorn times out idle keep-alive connections but not a request whose headers never finish (a slowloris), so
the HTTP protocol here adds that deadline; the body's deadline is the app's (core.api.gate.BodyLimit).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.api.limits import ServerLimits

log = logging.getLogger(__name__)


def _raw_refusal(status: int, reason: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer in the contract's shape, for the protocol layer (no app, no h11 cycle there)."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers and a cap on open connections."""

    limits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection from %s: %d open, the limit is %d", self.client,
                        len(self.connections) - 1, self.limits.max_connections)
            transport.write(_raw_refusal(503, "Service Unavailable", "too_many_connections",
                                         f"the server has {self.limits.max_connections} connections open; "
                                         "retry in a moment"))
            transport.close()
            return
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers():
            self._arm_header_deadline()  # a request's head is (partly) here: it must finish in time
        else:
            self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.limits.header_timeout_s, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        log.info("closed a connection from %s: no complete request headers within %.0f s", self.client,
                 self.limits.header_timeout_s)
        self.transport.write(_raw_refusal(408, "Request Timeout", "header_timeout",
                                          f"the request's headers did not arrive within "
                                          f"{self.limits.header_timeout_s:g} s"))
        self.transport.close()


def serve(app: Any, *, host: str, port: int, limits: ServerLimits = ServerLimits(), log_level: str = "warning",
          access_log: bool = False) -> None:
    """Run `app` until interrupted, with `limits` on its clients."""
    protocol = type("ProtolabH11Protocol", (GuardedH11Protocol,), {"limits": limits})
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, http=protocol,
                timeout_keep_alive=limits.keep_alive_s, h11_max_incomplete_event_size=limits.max_header_bytes,
                limit_concurrency=limits.max_concurrency)
