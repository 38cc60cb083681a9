"""Wikipedia retrieval as OpenChatKit did it (`retrieval/wikipedia.py`), with its bugs fixed.

The folder it serves (SageMaker copies it to /opt/ml/model) holds the index in the format of
the dataset `ChristophSchuhmann/wikipedia-3sentence-level-retrieval-index`:

- `knn.index`: any FAISS index over the snippet vectors, row i = snippet i; memory-mapped
  read-only, as the original did, so the page cache holds what searches touch;
- `wikipedia-en-sentences.parquet`: column `text_snippet` (one 3-sentence snippet per row, in
  article order) and, when present, `title` (the article; indexes built by `ragchat wikipedia
  build` carry it);
- `encoder/`: the query encoder, a Hugging Face model folder (`facebook/contriever-msmarco`);
- `retrieval.json` (optional): what the index was built with. Without it the original's
  settings apply: contriever-msmarco, 768 dimensions, masked mean pooling, no normalisation.

A query is embedded with masked mean pooling and searched by inner product. Each hit is then
widened with its neighbouring snippets i-1, i-2, ... and i+1, i+2, ... (up to `window` each
side) while their cosine similarity to the hit exceeds `threshold`, stopping at the first one
that does not. Fixed from the original: the cosine divides each vector by its own norm (the
original divided both by the first one's), a hit at the start of the index no longer wraps
around to the last rows (negative `iloc`), a hit near the end is still widened backwards (the
original gave up on an IndexError), the widening never crosses into another article when
titles are known, snippets are joined with a space (the original glued them together), and a
hit already inside an earlier hit's passage is not returned twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "retrieval.json"
MAX_K = 50
MAX_WINDOW = 10
MAX_QUERY_CHARS = 4096


class BadRequest(ValueError):
    """A request the caller must fix; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class IndexConfig:
    """How the index was built; the query encoder must match it. Defaults: the original's."""

    encoder_id: str = "facebook/contriever-msmarco"
    encoder_dir: str = "encoder"
    dimension: int = 768
    normalize: bool = False  # contriever's index holds raw mean-pooled vectors (inner product)
    max_tokens: int = 512
    index_file: str = "knn.index"
    snippets_file: str = "wikipedia-en-sentences.parquet"

    @classmethod
    def load(cls, folder: Path) -> IndexConfig:
        path = folder / CONFIG_FILE
        if not path.exists():
            return cls()
        values = json.loads(path.read_text())
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        return cls(**values)

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass(frozen=True)
class Query:
    text: str
    k: int = 5
    window: int = 5
    threshold: float = 0.5


# -- the maths, kept apart so it can be checked by hand -------------------------------------
def masked_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each text's token vectors over its real tokens only (contriever's pooling):
    padding never moves a vector, so a text gets the same vector alone or in a batch."""
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity, each vector divided by its own norm (the original used a's twice)."""
    denominator = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(np.dot(a, b)) / denominator if denominator > 0 else 0.0


def widen(hit: int, similarity: dict[int, float], threshold: float, window: int) -> tuple[int, int]:
    """The first and last row of the passage around `hit`: neighbours are taken outwards
    while their similarity to the hit exceeds the threshold, up to `window` each side.
    `similarity` holds the neighbours that may be taken (in range, same article)."""
    first = hit
    while hit - first < window and similarity.get(first - 1, -np.inf) > threshold:
        first -= 1
    last = hit
    while last - hit < window and similarity.get(last + 1, -np.inf) > threshold:
        last += 1
    return first, last


# -- the parts that touch models and files -----------------------------------------------------
class Encoder:
    """A Hugging Face encoder (contriever-msmarco in production) with masked mean pooling."""

    def __init__(self, folder: Path, max_tokens: int, normalize: bool, batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.max_tokens, self.normalize, self.batch_size = max_tokens, normalize, batch_size
        self.dimension = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            with self.torch.inference_mode():
                hidden = self.model(**batch)[0]
            out.append(masked_mean(hidden.float().numpy(), batch["attention_mask"].numpy()))
        vectors = np.concatenate(out) if out else np.zeros((0, self.dimension), dtype=np.float32)
        if self.normalize:
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors.astype(np.float32)


class Snippets:
    """The snippet texts (and titles) as Arrow columns: compact, no Python object per row."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if "text_snippet" not in names:
            raise ValueError(f"{path} has no text_snippet column (columns: {names})")
        table = pq.read_table(path, columns=[c for c in ("text_snippet", "title") if c in names])
        self.texts = table.column("text_snippet")
        self.titles = table.column("title") if "title" in names else None

    def __len__(self) -> int:
        return len(self.texts)

    def text(self, row: int) -> str:
        return str(self.texts[row].as_py() or "").strip()

    def title(self, row: int) -> str | None:
        return None if self.titles is None else self.titles[row].as_py()


class WikipediaRetriever:
    def __init__(self, folder: Path | str, encoder: Encoder | None = None) -> None:
        import faiss

        folder = Path(folder)
        self.config = IndexConfig.load(folder)
        self.snippets = Snippets(folder / self.config.snippets_file)
        config = self.config
        self.index = faiss.read_index(str(folder / config.index_file), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        self.encoder = encoder or Encoder(folder / config.encoder_dir, config.max_tokens, config.normalize)
        dims = {"retrieval.json": self.config.dimension, "knn.index": self.index.d, "encoder": self.encoder.dimension}
        if len(set(dims.values())) != 1:
            raise ValueError(f"dimensions disagree: {dims}")
        if self.index.ntotal != len(self.snippets):
            raise ValueError(f"knn.index holds {self.index.ntotal} vectors, the parquet {len(self.snippets)} snippets")
        self._lock = threading.Lock()  # one encoder pass at a time: torch already uses every core

    def search(self, query: Query) -> list[dict[str, Any]]:
        with self._lock:
            vector = self.encoder.encode([query.text])
            scores, rows = self.index.search(vector, min(query.k, self.index.ntotal))
            hits = [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
            windows = [self._neighbours(row, query.window) for row, _ in hits]
            texts = [self.snippets.text(r) for rows_ in windows for r in rows_]
            vectors = iter(self.encoder.encode(texts)) if texts else iter(())
        results: list[dict[str, Any]] = []
        covered: set[int] = set()
        for (row, score), neighbours in zip(hits, windows, strict=True):
            by_row = dict(zip(neighbours, (next(vectors) for _ in neighbours), strict=True))
            if row in covered:
                continue
            center = by_row[row]
            similarity = {r: cosine(v, center) for r, v in by_row.items() if r != row}
            first, last = widen(row, similarity, query.threshold, query.window)
            passage = list(range(first, last + 1))
            covered.update(passage)
            results.append(
                {
                    "id": f"wikipedia:{row}",
                    "row": row,
                    "score": score,
                    "cosine": cosine(vector[0], center),
                    "title": self.snippets.title(row),
                    "text": " ".join(self.snippets.text(r) for r in passage),
                    "snippets": passage,
                }
            )
        return results

    def _neighbours(self, row: int, window: int) -> list[int]:
        """The hit and the rows that may widen it: inside the index, inside its article."""
        title = self.snippets.title(row)
        rows = [row]
        for step in (-1, 1):
            for offset in range(1, window + 1):
                r = row + step * offset
                if not 0 <= r < len(self.snippets) or self.snippets.title(r) != title:
                    break
                rows.append(r)
        return sorted(rows)


# -- JSON in, JSON out ---------------------------------------------------------------------
def parse_request(body: bytes | str) -> Query:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("body", "expected a JSON object")
    unknown = set(payload) - {"inputs", "parameters"}
    if unknown:
        raise BadRequest(sorted(unknown)[0], "unknown field")
    text = payload.get("inputs")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("inputs", "a non-empty string is required")
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequest("inputs", f"at most {MAX_QUERY_CHARS} characters")
    params = payload.get("parameters", {})
    if not isinstance(params, dict):
        raise BadRequest("parameters", "expected an object")
    unknown = set(params) - {"k", "window", "threshold"}
    if unknown:
        raise BadRequest(f"parameters.{sorted(unknown)[0]}", "unknown field")
    k = _integer(params, "k", 5, 1, MAX_K)
    window = _integer(params, "window", 5, 0, MAX_WINDOW)
    threshold = params.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not -1 <= threshold <= 1:
        raise BadRequest("parameters.threshold", "a number from -1 to 1 is required")
    return Query(text.strip(), k, window, float(threshold))


def _integer(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"parameters.{name}", f"an integer from {low} to {high} is required")
    return value


def handle(retriever: WikipediaRetriever, body: bytes | str) -> dict[str, Any]:
    """The endpoint's whole contract: a request body in, the response object out."""
    query = parse_request(body)
    return {
        "results": retriever.search(query),
        "encoder": retriever.config.encoder_id,
        "dimension": retriever.config.dimension,
    }
