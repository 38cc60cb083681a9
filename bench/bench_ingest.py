"""Ingestion throughput with the local embedder: the FAQ into a fresh local index, through
the same command users run (read, chunk, embed, upsert)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.cli import main  # noqa: E402


def run(*sources: str) -> None:
    with tempfile.TemporaryDirectory() as data:
        start = time.perf_counter()
        main(["--data-dir", data, "ingest", *sources, "--no-progress"])
        print(f"  wall time including model load: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    print("FAQ (154 rows):", flush=True)
    run(str(ROOT / "data" / "Amazon_SageMaker_FAQs.csv"))
