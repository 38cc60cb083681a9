"""Embeddings from the SageMaker embedding endpoint.

This product's endpoint runs `model_code/embeddings/code/inference.py` and answers
`{"vectors": [...]}`: one pooled, normalised vector per text. The stock Hugging Face
feature-extraction container answers token-level vectors instead, padded to the batch's
longest text and without the attention mask, so pooling them would mix padding into the
vector (the original's flaw). Against such a container the adapter sends one text per
request: a lone text has no padding, so the mean over its tokens is the masked mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UpstreamModelError
from ..pooling import l2_normalise, mean_pool
from .sagemaker import SageMakerRuntime

STEP = "embedding"


class SageMakerEmbedder:
    dimension = 384

    def __init__(self, runtime: SageMakerRuntime, endpoint: str, batch_size: int = 32) -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.token_level: bool | None = None  # learnt from the first answer

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        size = 1 if self.token_level else self.batch_size
        for start in range(0, len(texts), size):
            vectors += self._embed_batch(list(texts[start : start + size]))
        return vectors

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        answer = self.runtime.invoke(self.endpoint, {"inputs": texts}, step=STEP)
        rows = answer.get("vectors", answer.get("embeddings")) if isinstance(answer, dict) else answer
        if not isinstance(rows, list) or len(rows) != len(texts):
            raise UpstreamModelError(f"endpoint {self.endpoint} returned no vector per input", step=STEP)
        token_level = _depth(rows[0]) >= 2
        if token_level and len(texts) > 1:
            self.token_level = True  # padded batch: ask again one text at a time
            return [self._embed_batch([text])[0] for text in texts]
        self.token_level = token_level
        vectors = [_pool(row) if token_level else l2_normalise(row) for row in rows]
        if any(len(v) != self.dimension for v in vectors):
            raise UpstreamModelError(
                f"endpoint {self.endpoint} returned vectors of dimension {len(vectors[0])}, expected {self.dimension}",
                step=STEP,
            )
        return vectors


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _pool(row: Any) -> list[float]:
    """A lone text's token vectors (`[tokens][384]`, or `[1][tokens][384]` as the
    pipeline nests them) averaged and normalised."""
    while _depth(row) > 2:
        row = row[0]
    return l2_normalise(mean_pool(row))
