"""Slow and greedy clients against a real `protolab serve` on 127.0.0.1: headers that never finish, a body
shorter than its Content-Length, an idle keep-alive, more connections than allowed. Each is answered in the
contract's JSON and closed, and the server keeps answering others meanwhile."""

from __future__ import annotations

import json
import socket

import httpx

from tests.test_serve_cli import _free_port, _start, _stop, _wait_ready

MAX_CONNECTIONS = 6
WAIT_S = 60  # the most any one socket waits for its answer: a bound on the test, not a timing claim


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)


def _answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, JSON body, what came after it) of the one answer the server sends before closing."""
    data = b""
    while chunk := sock.recv(65536):  # until the server closes the connection (or WAIT_S passes: an error)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    return status, json.loads(body[:length]), body[length:]


def test_slow_clients_are_answered_and_closed(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["--port", str(port), "--no-auth", "--header-timeout", "2", "--body-timeout", "1",
                   "--max-connections", str(MAX_CONNECTIONS)])
    try:
        _wait_ready(proc, url)
        # More connections than allowed: the one past the limit is refused at once, the others stay usable.
        held = [_connect(port) for _ in range(MAX_CONNECTIONS)]
        status, body, _ = _answer(_connect(port))
        assert status == 503 and body["error"] == "too_many_connections" and str(MAX_CONNECTIONS) in body["detail"]
        for sock in held:
            sock.close()

        # A few slowloris sockets: partial headers, or nothing at all. Each hears 408 and is closed.
        slow = [_connect(port) for _ in range(4)]
        for i, sock in enumerate(slow[:3]):
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {i}".encode())
        assert httpx.get(f"{url}/healthz", timeout=WAIT_S).status_code == 200  # not held up by them
        for sock in slow:
            status, body, rest = _answer(sock)
            assert (status, body["error"], rest) == (408, "header_timeout", b"")

        # Content-Length: 1000, 20 bytes sent: 408 once the body deadline passes, then closed.
        short = _connect(port)
        short.sendall(f"POST /v1/runs/{run_id}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1000\r\n\r\n".encode() + b'{"texts": ["hello", ')
        status, body, _ = _answer(short)
        assert status == 408 and body["error"] == "body_timeout"

        # A kept-alive connection whose next request never finishes its headers is closed too.
        kept = _connect(port)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'"version"' not in first:
            first += kept.recv(65536)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        status, body, _ = _answer(kept)
        assert status == 408 and body["error"] == "header_timeout"
        assert httpx.post(f"{url}/v1/runs/{run_id}/predict", json={"texts": ["love it"]},
                          timeout=WAIT_S).status_code == 200
    finally:
        err = _stop(proc)
    assert "Traceback" not in err and "no complete request headers within 2 s" in err
