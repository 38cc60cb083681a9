"""How much, and for how long, a server of this project listens to one request.

uvicorn bounds the idle time between kept-alive requests, but not the time a client takes
to send a request's headers or its body: a client that sends one byte a second holds a
connection (and for a body, a request handler) for as long as it likes. Here the headers
must arrive within `HEADER_TIMEOUT_SECONDS` of the connection opening (or of the
previous response), and the body within `BODY_TIMEOUT_SECONDS` and `MAX_BODY_BYTES`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import h11
from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from .http_errors import ApiError

MAX_BODY_BYTES = 256 * 1024
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or a 4xx: 413 over `limit`, 408 slower than `BODY_TIMEOUT_SECONDS`,
    and 499 (nginx's "client closed request") when the client hangs up first. A hang-up
    is the client's doing, so it is answered like any refused request: no stack trace, no
    server-error count."""
    timeout = BODY_TIMEOUT_SECONDS
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body is over {limit} bytes", "body")
    raw = bytearray()
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > limit:
                    raise ApiError(413, "body_too_large", f"the body is over {limit} bytes", "body")
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {timeout:g} s", "body") from None
    except ClientDisconnect:
        raise ApiError(
            499, "client_closed_request", "the client disconnected before sending the body", "body"
        ) from None
    return bytes(raw)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's headers: a client
    that has not sent a complete request line and headers `HEADER_TIMEOUT_SECONDS` after
    connecting (or after its previous answer) gets a 408 and the connection is closed.
    Use it with `uvicorn.run(..., http=HeaderTimeoutProtocol)`."""

    header_timeout = HEADER_TIMEOUT_SECONDS
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _watch_headers(self) -> None:
        if not self._waiting_for_headers():
            self._stop_watching()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_watching(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._waiting_for_headers():
            return
        message = "the request headers did not arrive in time"
        self._send_json_and_close(408, "Request Timeout", "header_timeout", message)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse (no or two Host headers, a bad Content-Length): JSON
        like every other refusal, where uvicorn answers plain text."""
        self._send_json_and_close(400, "Bad Request", "invalid_http", f"{msg}: the request is not valid HTTP/1.1")

    def _send_json_and_close(self, status: int, reason: str, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message, "field": "headers"}}).encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n".encode()
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self.transport.close()
