"""One of several processes writing the same local index at once (the concurrency test).
Waits until START exists, then upserts BATCHES batches of 10 documents `NAME-i`, each with
its own random unit vector. Usage: index_writer.py FOLDER NAME START BATCHES"""

from __future__ import annotations

import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "lambda"))

import numpy as np

from ragchat.interfaces import Document
from ragchat.local.vector_index import FaissVectorIndex

DIMENSION = 8


def vector(doc_id: str) -> np.ndarray:
    v = np.random.default_rng(zlib.crc32(doc_id.encode())).normal(size=DIMENSION)
    return v / np.linalg.norm(v)


if __name__ == "__main__":
    folder, name, start, batches = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    index = FaissVectorIndex(folder, DIMENSION)
    while not start.exists():  # the barrier: every writer starts together
        time.sleep(0.001)
    for batch in range(batches):
        ids = [f"{name}-{batch * 10 + n}" for n in range(10)]
        index.upsert([Document(i, f"text of {i}") for i in ids], [vector(i) for i in ids])
