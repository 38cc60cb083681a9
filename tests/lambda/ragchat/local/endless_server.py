"""`ragchat serve`'s server (ragchat.local.server) on test doubles with a model that never
stops talking: the SIGTERM test runs it as a real process. Prints `closed` when the
model's stream is closed. Usage: endless_server.py PORT"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from conftest import make_engine
from doubles import TickingGenerator
from ragchat.engine import EngineSettings
from ragchat.local.server import bind, serve


class ReportingModel(TickingGenerator):
    def stream(self, prompt, params):
        try:
            yield from super().stream(prompt, params)
        finally:
            print("closed", flush=True)


if __name__ == "__main__":
    sock = bind("127.0.0.1", int(sys.argv[1]))
    engine = make_engine(generator=ReportingModel(), settings=EngineSettings(buffered_generation=False))
    serve(engine, sock, log_level="warning")
