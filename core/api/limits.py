"""The API's limits, as plain numbers: what one request may hold (Limits, the app's) and what a client may cost
the server (ServerLimits, uvicorn's). Kept free of FastAPI and uvicorn so the CLI can show the defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256  # texts in one predict request
    max_chars: int = 20_000  # characters in one text (a long review, not a book)
    max_body_bytes: int = 2_000_000  # the whole request body
    max_k: int = 100  # recommendations in one answer
    max_likes: int = 1_000  # liked items in one recommend request
    body_timeout_s: float = 10.0  # from a request's headers to the last byte of its body (2 MB at 200 kB/s)


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float = 10.0  # from connecting (or the last answer) to a request's complete headers
    keep_alive_s: int = 5  # an idle connection between requests
    max_header_bytes: int = 16 * 1024  # request line and headers together
    max_connections: int = 200  # open connections; more are answered 503 and closed at once
    max_concurrency: int = 256  # uvicorn's own cap on connections and requests in flight (503 past it)
