"""Masked mean pooling and L2 normalisation, in plain Python so the Lambda needs no numpy.

The original averaged padded tokens too, so a text's vector depended on its batch
neighbours. Pooling over real tokens only makes every path give the same vector."""

from __future__ import annotations

import math
from collections.abc import Sequence


def l2_normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else [float(x) for x in vector]


def mean_pool(token_vectors: Sequence[Sequence[float]], mask: Sequence[int] | None = None) -> list[float]:
    """Mean of the token vectors whose mask is 1 (all of them without a mask)."""
    rows = [v for i, v in enumerate(token_vectors) if mask is None or mask[i]]
    if not rows:
        raise ValueError("cannot pool an input with no tokens")
    width = len(rows[0])
    return [sum(row[j] for row in rows) / len(rows) for j in range(width)]
