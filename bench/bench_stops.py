"""The stop rule's cost per reply: one pass over the reply, whatever the number of stop
sequences. Streams a 2,000-character reply in 4-character pieces through `StopFilter`
with 1 to 5,000 stop sequences (none of which occurs) and prints the time to build the
filter (linear in the stop sequences' total length) and to stream the reply through it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda"))

from ragchat.stops import StopFilter

REPLY = ("Managed Spot Training can be used with all instances supported in SageMaker. " * 30)[:2000]
PIECES = [REPLY[i : i + 4] for i in range(0, len(REPLY), 4)]


def per_reply_ms(stops: list[str], rounds: int = 20) -> tuple[float, float]:
    """(building the filter, streaming the reply through it), in ms."""
    build = scan = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        stop_filter = StopFilter(stops, ["<pad>"])
        t1 = time.perf_counter()
        out = "".join(stop_filter.feed_all(PIECES))
        build, scan = build + t1 - t0, scan + time.perf_counter() - t1
    assert out == REPLY.strip()
    return build / rounds * 1000, scan / rounds * 1000


def main() -> None:
    print(f"stop rule over a {len(REPLY)}-character reply in {len(PIECES)} pieces")
    for count in (1, 4, 100, 5000):
        stops = ["<human>"] + [f"<stop-{i}>" for i in range(count - 1)]
        build, scan = per_reply_ms(stops)
        print(f"  {count:5d} stop sequences: build {build:7.2f} ms, stream the reply {scan:6.2f} ms")


if __name__ == "__main__":
    main()
