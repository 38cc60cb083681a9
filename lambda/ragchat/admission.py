"""Who generates next: one reply at a time per model, first come first served, with a
bounded waiting line, a per-request deadline and cancellation.

Two CPU cores gain nothing from generating two replies at once, but a plain lock is
neither fair (any waiter may win) nor bounded, and a waiter the client has left would
still take its turn. Every wait here also watches the request's cancel event, so a
client that goes away, or a shutdown, frees its place at once."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import ChatServiceError

# How often a waiter looks at its cancel event and deadline (it is woken at once when
# its turn comes; this only bounds how late a cancelled waiter leaves the line).
_POLL_SECONDS = 0.05


class QueueFull(ChatServiceError):
    status = 503
    code = "busy"
    upstream = False


class DeadlineExceeded(ChatServiceError):
    status = 504
    code = "deadline_exceeded"
    upstream = False
    retryable = False  # the same request would miss the same deadline again


class RequestCancelled(ChatServiceError):
    """The client went away or the server is stopping: nobody waits for this reply."""

    status = 503
    code = "cancelled"
    upstream = False


@dataclass
class _Entry:
    cancel: threading.Event
    admitted: bool = False


class GenerationQueue:
    """A FIFO turn for each reply. `limit` bounds how many may wait (None: no bound)."""

    def __init__(self, limit: int | None = None, *, expected_turn_seconds: float = 5.0) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._waiting: deque[_Entry] = deque()
        self._active: _Entry | None = None
        self._closed = False
        # a running mean of turn length, for the Retry-After a refused client gets
        self._turn_seconds = expected_turn_seconds

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._active is not None

    def retry_after(self) -> int:
        """Seconds until the line has likely moved by one place per waiter."""
        with self._cond:
            return max(1, math.ceil(self._turn_seconds * (len(self._waiting) + 1)))

    @contextmanager
    def turn(self, cancel: threading.Event, deadline: float | None = None) -> Iterator[None]:
        """Wait for this request's turn (deadline: a `time.monotonic()` value)."""
        entry = _Entry(cancel)
        with self._cond:
            if self._closed:
                raise RequestCancelled("the server is shutting down", step="generation")
            if self._active is None and not self._waiting:
                entry.admitted, self._active = True, entry
            elif self.limit is not None and len(self._waiting) >= self.limit:
                wait = max(1, math.ceil(self._turn_seconds * (len(self._waiting) + 1)))
                raise QueueFull(
                    f"{len(self._waiting)} requests are already waiting for the model; retry in {wait}s",
                    step="generation",
                    retry_after=wait,
                )
            else:
                self._waiting.append(entry)
                while not entry.admitted:
                    if cancel.is_set() or self._closed:
                        self._waiting.remove(entry)
                        raise RequestCancelled("the request was cancelled while queued", step="generation")
                    if deadline is not None and time.monotonic() >= deadline:
                        self._waiting.remove(entry)
                        raise DeadlineExceeded("no turn at the model before the request's deadline", step="generation")
                    self._cond.wait(_POLL_SECONDS)
                if cancel.is_set() or self._closed:  # cancelled as its turn came
                    self._hand_over()
                    raise RequestCancelled("the request was cancelled while queued", step="generation")
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._turn_seconds = 0.7 * self._turn_seconds + 0.3 * (time.monotonic() - started)
                self._hand_over()

    def _hand_over(self) -> None:
        """The model is free: the first waiter gets it (call with the lock held)."""
        self._active = None
        if self._waiting:
            nxt = self._waiting.popleft()
            nxt.admitted, self._active = True, nxt
        self._cond.notify_all()

    def close(self) -> None:
        """Shutdown: refuse newcomers, and cancel every waiting and running request."""
        with self._cond:
            self._closed = True
            for entry in (*self._waiting, *([self._active] if self._active else [])):
                entry.cancel.set()
            self._cond.notify_all()
