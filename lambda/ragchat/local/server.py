"""Runs the HTTP app for the local mode on uvicorn.

The port is bound before the models load, so a busy port fails at once with a hint
instead of after the load. SIGTERM and SIGINT cancel the running and queued replies
first (the engine's queue), so streams end at their next token and the server exits
promptly instead of waiting for long answers, or for clients that never read them."""

from __future__ import annotations

import errno
import socket
import threading
import types

import uvicorn

from ..app import create_app
from ..engine import ChatEngine
from ..limits import HeaderTimeoutProtocol

# After SIGTERM, connections still open this long are dropped (a backstop: cancelled
# replies normally end at their next token).
GRACEFUL_SHUTDOWN_SECONDS = 3


class PortInUse(Exception):
    pass


def bind(host: str, port: int) -> socket.socket:
    """The listening address, taken now; a port in use is a PortInUse naming --port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: no wait after a restart
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use (another `ragchat serve`?): "
                f"choose another with --port (make run PORT=8090)"
            ) from None
        raise
    sock.set_inheritable(True)
    return sock


class _StoppingServer(uvicorn.Server):
    """uvicorn that cancels the engine's work when asked to exit."""

    def __init__(self, config: uvicorn.Config, engine: ChatEngine) -> None:
        super().__init__(config)
        self.engine = engine

    def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
        # not in the signal handler itself: it may interrupt a holder of the queue's lock
        threading.Thread(target=self.engine.shutdown, name="ragchat-shutdown", daemon=True).start()
        super().handle_exit(sig, frame)


def serve(
    engine: ChatEngine, sock: socket.socket, *, allowed_hosts: list[str] | None = None, log_level: str = "info"
) -> None:
    """Serve until SIGTERM/SIGINT on an already bound socket (see `bind`); `allowed_hosts`:
    the Host names the app answers (the cross-site guard)."""
    config = uvicorn.Config(
        create_app(lambda: engine, **({"allowed_hosts": allowed_hosts} if allowed_hosts is not None else {})),
        log_level=log_level,
        http=HeaderTimeoutProtocol,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    try:
        _StoppingServer(config, engine).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it caught once it has shut down gracefully
        pass
    finally:
        engine.close()
