"""Slow senders and clients that leave, over real sockets to the server `ragchat serve`
runs: headers and bodies must arrive in time, and a hang-up during upload is the
client's doing (no stack trace, not a server error)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

import ragchat.limits
from conftest import serving
from ragchat.app import create_app
from ragchat.limits import HeaderTimeoutProtocol

GUARD_SECONDS = 10  # only so that a broken server fails the test instead of hanging it


@contextmanager
def connect(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=GUARD_SECONDS) as sock:
        yield sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP response: its status and body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"the server closed without an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return int(lines[0].split()[1]), body


def test_headers_that_never_complete_get_408_and_the_connection_closes(live_server, monkeypatch):
    monkeypatch.setattr(HeaderTimeoutProtocol, "header_timeout", 0.2)
    with connect(live_server) as sock:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the rest
        status, body = read_response(sock)
        assert status == 408 and json.loads(body)["error"]["code"] == "header_timeout"
        assert sock.recv(1) == b""  # closed


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\n\r\n",  # no Host
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_a_request_that_is_not_valid_http_gets_a_json_400(live_server, head):
    """uvicorn answered these in plain text; every other refusal is JSON naming what is wrong."""
    with connect(live_server) as sock:
        sock.sendall(head)
        status, body = read_response(sock)
        error = json.loads(body)["error"]
        assert status == 400 and error["code"] == "invalid_http" and error["field"] == "headers"


def test_a_connection_that_sends_nothing_is_closed(live_server, monkeypatch):
    monkeypatch.setattr(HeaderTimeoutProtocol, "header_timeout", 0.2)
    with connect(live_server) as sock:
        status, _ = read_response(sock)
        assert status == 408 and sock.recv(1) == b""


def test_kept_alive_connections_still_serve_requests(live_server):
    body = b'{"query": "spot", "top_k": 1}'
    request = b"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    with connect(live_server) as sock:
        for _ in range(2):
            sock.sendall(request)
            status, body = read_response(sock)
            assert status == 200 and len(json.loads(body)["matches"]) == 1


def test_a_body_that_never_completes_gets_408(live_server, engine, monkeypatch):
    monkeypatch.setattr(ragchat.limits, "BODY_TIMEOUT_SECONDS", 0.2)
    with connect(live_server) as sock:
        sock.sendall(
            b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"inputs": "Which'
        )
        status, body = read_response(sock)
    assert status == 408 and json.loads(body)["error"]["field"] == "body"
    assert engine.store.turns == {} and engine.generator.prompts == []


@pytest.fixture
def error_logs(caplog) -> Iterator[list[logging.LogRecord]]:
    """ERROR records of the app and of uvicorn (whose loggers do not propagate)."""
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(caplog.handler)
    yield caplog.records
    uvicorn_error.removeHandler(caplog.handler)


def test_a_client_that_hangs_up_during_upload_is_not_a_server_error(engine, error_logs):
    statuses: list[int] = []
    handled = threading.Event()
    app = create_app(lambda: engine)

    async def recording(scope, receive, send):
        async def record(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        try:
            await app(scope, receive, record)
        finally:
            if scope["type"] == "http":
                handled.set()

    with serving(recording) as url:
        with connect(url) as sock:
            sock.sendall(
                b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"inputs": "Which'
            )
        assert handled.wait(GUARD_SECONDS)

    assert statuses == [499]
    assert [r.getMessage() for r in error_logs if r.levelno >= logging.ERROR] == []
    assert engine.store.turns == {}
