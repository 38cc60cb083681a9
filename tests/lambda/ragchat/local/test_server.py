"""`ragchat serve` as a process: SIGTERM or Ctrl-C mid-stream ends the stream and the process, a
busy port is reported before any model loads, and `serve --help` documents each option."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, free_port
from ragchat.cli import main
from raw_http import read_all, read_until, write_chat

ENDLESS_SERVER = Path(__file__).with_name("endless_server.py")
WAIT = 20.0  # a hang fails the test after this; it is not what is measured


def connect(port: int, proc: subprocess.Popen) -> socket.socket:
    """The server's socket is bound before the app starts: connect as soon as it listens."""
    for _ in range(2000):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        except ConnectionRefusedError:
            time.sleep(0.01)
    raise AssertionError("server never listened")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_mid_stream_ends_the_stream_and_the_process(sig):
    """Ctrl-C also ended with a KeyboardInterrupt traceback, after a clean shutdown."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ENDLESS_SERVER), str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sock = connect(port, proc)
        write_chat(sock, f"127.0.0.1:{port}", {"inputs": "talk forever", "stream": True})
        data = read_until(sock, b"event: token")
        proc.send_signal(sig)
        data += read_all(sock)  # the server ends the stream, then the connection
        assert proc.wait(timeout=WAIT) in (0, -signal.SIGTERM)
        assert b"event: error" in data and b"cancelled" in data
        output = proc.stdout.read()
        assert "closed" in output, "the model's stream was not closed"
        assert "Traceback" not in output, output
    finally:
        proc.kill()
        proc.wait()


def test_a_busy_port_is_reported_before_the_models_load(capsys, monkeypatch):
    def no_models(args):
        raise AssertionError("models loaded although the port is busy")

    monkeypatch.setattr("ragchat.cli._engine", no_models)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port}" in err and "--port" in err


def test_serve_help_describes_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--queue-limit", "--deadline", "--conversation-days"):
        line = next(line for line in text.splitlines() if line.strip().startswith(option))
        assert line.strip() != option, f"{option} has no description"
