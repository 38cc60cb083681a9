"""Runs the synchronous engine for an HTTP request and stops it when the client leaves.

The engine is a blocking generator driven from worker threads. Left to itself, a client
that disconnects mid-stream leaves that generator suspended (holding the model's turn)
until the garbage collector happens to close it. Here a disconnect sets the request's
cancel event (a queued request leaves the line, a generating one stops at its next
token) and the generator is closed explicitly, so the model is free for the next
request at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready: nobody reads a response."""


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def call_until_disconnect(request: Request, cancel: threading.Event, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread. If the client leaves first, sets `cancel`, waits for
    `fn` to notice and return, then raises ClientGone."""
    work = asyncio.ensure_future(run_in_threadpool(fn, *args))
    watch = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            cancel.set()
        watch.cancel()
    if not work.done():
        with anyio.CancelScope(shield=True):
            await asyncio.wait({work})  # the cancelled work releases the model before we go
        work.exception()  # retrieved: whatever it raised after the client left is moot
        raise ClientGone()
    return work.result()


async def first_event(request: Request, cancel: threading.Event, events: Iterator[T]) -> T | None:
    """The stream's first event (after the queue and the first token), or None if the
    stream ended without one. Runs before the response starts, so that errors before
    the first token (queue full, deadline, bad upstream) become proper HTTP statuses."""
    return await call_until_disconnect(request, cancel, next, events, None)


class CancellableStream(StreamingResponse):
    """A streamed response that, however it ends (finished, client gone, server stopping),
    cancels its request and closes the engine's generator before it returns."""

    def __init__(self, content: Iterator[str], cancel: threading.Event, events: Iterator[Any], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.cancel, self.events = cancel, events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()
            close = getattr(self.events, "close", None)
            if close is not None:
                # no step of `events` is running now: a cancelled stream_response waits
                # for its worker thread to return before it ends
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(close)
