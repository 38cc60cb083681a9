"""A `/chat` request over a raw HTTP/1.1 socket, so a test controls exactly when the client
goes away (a real disconnect, not a mocked one), and readers for what comes back (raw bytes,
or a streamed reply's server-sent events)."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

WAIT = 15.0  # a hang fails the test after this; it is not what is measured


def write_chat(sock: socket.socket, netloc: str, body: dict) -> None:
    """POST `body` to /chat on an open connection (closed by the server after the reply)."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /chat HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + payload)


def send_chat(
    url: str, question: str, stream: bool, parameters: dict | None = None, timeout: float = WAIT
) -> socket.socket:
    """A new connection to the server at `url`, carrying one /chat request."""
    address = urlparse(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=timeout)
    body: dict = {"inputs": question, "stream": stream}
    if parameters is not None:
        body["parameters"] = parameters
    write_chat(sock, address.netloc, body)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}: {data[-300:]!r}")
        data += chunk
    return data


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def sse_events(text: str) -> list[tuple[str, dict]]:
    """A streamed reply's (event, JSON data) pairs, in order."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events
