"""Builds the local chat engine: real small models and files under one data folder.

The FAQ is indexed on first run (with a progress bar) and reused until the file changes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..catalog import get_profile
from ..engine import ChatEngine, EngineSettings
from ..errors import SettingError
from ..interfaces import Embedder, Generator
from ..knowledge import document_sparse, document_vectors, faq_documents, file_sha256
from ..retrieval import Bm25Encoder
from .moderator import KeywordStandInModerator
from .store import SqliteConversationStore
from .vector_index import FaissVectorIndex

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_KNOWLEDGE_BASE = PROJECT_ROOT / "data" / "Amazon_SageMaker_FAQs.csv"
# How documents are turned into vectors; an index built another way is rebuilt on start.
INDEX_METHOD = "text-dense+bm25-v2"


def min_score_from_env() -> float | None:
    """`RAGCHAT_MIN_SCORE`, the no-answer threshold `ragchat eval` calibrates on your own
    questions (as in the Lambda); None when unset: the default for the knowledge base."""
    value = os.environ.get("RAGCHAT_MIN_SCORE", "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise SettingError(f"RAGCHAT_MIN_SCORE must be a number, got {value!r}") from None


@dataclass(frozen=True)
class LocalSettings:
    data_dir: Path = Path(os.environ.get("RAGCHAT_DATA_DIR", PROJECT_ROOT / ".data"))
    # the built-in FAQ indexed beside what `ragchat ingest` added; None: only your own documents
    knowledge_base: Path | None = DEFAULT_KNOWLEDGE_BASE
    context_budget_tokens: int | None = None  # None: derived from the model profile
    retrieval_top_k: int = EngineSettings.retrieval_top_k
    profile: str = "smollm2-local"
    # A Wikipedia-format index folder (`ragchat wikipedia build`, or the staged dataset):
    # served by the retrieval endpoint's handler instead of the FAQ index.
    wikipedia_dir: Path | None = (
        Path(os.environ["RAGCHAT_WIKIPEDIA_DIR"]) if os.environ.get("RAGCHAT_WIKIPEDIA_DIR") else None
    )
    # the no-answer threshold; None: 0.28 on a hybrid index, 0 for a Wikipedia index
    min_score: float | None = field(default_factory=min_score_from_env)
    # one reply at a time; this many may wait for the model (beyond: 503 + Retry-After)
    queue_limit: int = 8
    # queue wait + generation, per request (past it: 504)
    deadline_seconds: float = 120.0
    # the chat model: a GGUF file with a chat template (None: $RAGCHAT_MODEL, else SmolLM2-135M)
    model: Path | None = None
    # llama.cpp threads (None: $RAGCHAT_THREADS, else every core for prefill and one for a small model's tokens)
    threads: int | None = None
    # conversation turns are kept this long (as the deployed table's `conversation_ttl_days`); 0: forever
    conversation_days: float = 30


def ensure_knowledge_base(
    path: Path,
    embedder: Embedder,
    index: FaissVectorIndex,
    state_file: Path,
    progress: bool = True,
    namespace: str = "",
) -> bool:
    """Index the FAQ unless the index already holds this exact file, indexed this way.
    Returns True if it built."""
    digest = file_sha256(path)
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    fresh = state.get(str(path.name)) == digest and state.get(f"{path.name}:method") == INDEX_METHOD
    indexed = set(state.get(f"{path.name}:ids", []))
    if fresh and indexed and indexed <= set(index.list_ids(namespace)):  # every row still there
        return False
    from tqdm import tqdm

    documents = faq_documents(path)
    current = {d.id for d in documents}
    # only rows of an earlier version of this file go: documents added by `ragchat ingest` stay
    stale = [i for i in state.get(f"{path.name}:ids", []) if i not in current]
    if stale:
        index.delete(stale, namespace)
    encoder = Bm25Encoder.fit(d.text for d in documents)
    batch = 32
    with tqdm(
        total=len(documents), desc=f"Indexing {path.name}", unit="doc", disable=not progress, file=sys.stderr
    ) as bar:
        for start in range(0, len(documents), batch):
            chunk = documents[start : start + batch]
            index.upsert(chunk, document_vectors(embedder, chunk), namespace, document_sparse(encoder, chunk))
            bar.update(len(chunk))
    state[str(path.name)] = digest
    state[f"{path.name}:ids"] = sorted(current)
    state[f"{path.name}:method"] = INDEX_METHOD
    state_file.write_text(json.dumps(state))
    return True


def knowledge_base_path(value: str) -> Path | None:
    """`--knowledge-base`: a CSV path, or "none" for only your own documents."""
    return None if value.strip().lower() == "none" else Path(value)


def forget_knowledge_bases(index: FaissVectorIndex, state_file: Path, namespace: str = "") -> int:
    """Remove the rows `ensure_knowledge_base` indexed (the FAQ) from the index, so it holds
    only what `ragchat ingest` added. Returns how many went."""
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    ids = [i for key, value in state.items() if key.endswith(":ids") for i in value]
    if ids:
        index.delete(ids, namespace)
        state_file.write_text(json.dumps({}))
    return len(ids)


def local_embedder() -> Embedder:
    """all-MiniLM-L6-v2 on onnxruntime: the local mode's embedder, and ingestion's by default."""
    from .embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


def local_index(data_dir: Path, dimension: int) -> FaissVectorIndex:
    """The local mode's FAISS index under the data folder (the one `ragchat ingest` fills)."""
    return FaissVectorIndex(data_dir / "index", dimension)


def faq_parts(settings: LocalSettings, progress: bool) -> dict[str, Any]:
    """MiniLM and the FAISS index of the FAQ (and whatever `ragchat ingest` added)."""
    embedder = local_embedder()
    index = local_index(settings.data_dir, embedder.dimension)
    state_file = settings.data_dir / "indexed.json"
    if settings.knowledge_base is None:
        forget_knowledge_bases(index, state_file)
    else:
        ensure_knowledge_base(settings.knowledge_base, embedder, index, state_file, progress)
    return {"embedder": embedder, "index": index}


def wikipedia_parts(folder: Path) -> dict[str, Any]:
    """The retrieval endpoint's handler on a local Wikipedia-format folder, in-process."""
    from ..wikipedia import WikipediaRetrieval
    from .wikipedia import InProcessRuntime

    if not (folder / "knn.index").is_file():
        raise FileNotFoundError(f"{folder} holds no knn.index: build one with `ragchat wikipedia build`")
    return {"retriever": WikipediaRetrieval(InProcessRuntime(folder), endpoint=str(folder))}


def build_local_engine(
    settings: LocalSettings = LocalSettings(),
    *,
    generator_factory: Callable[[], Generator] | None = None,
    progress: bool = True,
) -> ChatEngine:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    parts = wikipedia_parts(settings.wikipedia_dir) if settings.wikipedia_dir else faq_parts(settings, progress)
    engine_settings = EngineSettings(
        context_budget_tokens=settings.context_budget_tokens,
        retrieval_top_k=settings.retrieval_top_k,
        queue_limit=settings.queue_limit,
        deadline_seconds=settings.deadline_seconds,
        buffered_generation=False,  # local: stream, so cancellation and deadlines act per token
    )
    if settings.wikipedia_dir:  # the no-answer threshold is calibrated on the FAQ's hybrid scores only
        engine_settings = replace(engine_settings, min_score=0.0)
    if settings.min_score is not None:
        engine_settings = replace(engine_settings, min_score=settings.min_score)
    profile = get_profile(settings.profile)
    if generator_factory is None:
        from .generator import LlamaCppGenerator

        def generator_factory() -> Generator:
            return LlamaCppGenerator(settings.model, threads=settings.threads, context_window=profile.context_window)

    return ChatEngine(
        **parts,
        generator=generator_factory(),
        moderator=KeywordStandInModerator(),
        store=SqliteConversationStore(settings.data_dir / "conversations.sqlite3", settings.conversation_days or None),
        profile=profile,
        settings=engine_settings,
    )
