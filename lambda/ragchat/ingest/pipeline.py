"""One ingestion run: chunk, find what the index already holds, embed and upsert the rest
in batches, optionally delete what the sources no longer contain.

Resuming is a consequence of stable ids: a re-run lists the ids already in the index and
embeds only the chunks that are missing, so an interrupted run loses at most the batch it
was writing, and a finished one is a no-op."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..interfaces import Document, Embedder, VectorIndex
from ..knowledge import document_sparse, document_vectors
from ..retrieval import Bm25Encoder
from .chunking import id_source, in_scope


@dataclass
class IngestSummary:
    documents: int = 0
    chunks: int = 0
    upserted: int = 0
    skipped: int = 0  # already in the index
    deleted: int = 0
    kept: int = 0  # chunks --sync left because their file was reported as a problem
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.upserted / self.seconds if self.seconds else 0.0
        return (
            f"documents {self.documents}, chunks {self.chunks}, upserted {self.upserted}, "
            f"skipped {self.skipped} (already indexed), deleted {self.deleted}, "
            f"kept {self.kept} (files with problems), problems {len(self.problems)}, "
            f"{self.seconds:.1f} s ({rate:.0f} chunks/s)"
        )


def ingest(
    chunks: Sequence[Document],
    embedder: Embedder,
    index: VectorIndex,
    *,
    namespace: str = "",
    batch_size: int = 64,
    scopes: Sequence[str] | None = None,
    keep: Sequence[str] = (),
    sync: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    summary: IngestSummary | None = None,
    stored: Sequence[tuple[str, str]] = (),
) -> IngestSummary:
    """`stored`: (id, text) of what the index already holds, where it can be read cheaply
    (the local index): BM25's statistics are fitted on them together with this run's
    chunks, so a file added alone gets the knowledge base's word weights, not those of a
    one-document corpus (its keyword score was 13 times lower than when ingested with its
    folder). Pinecone cannot list texts cheaply: there, a run's own chunks are the corpus."""
    from tqdm import tqdm

    if sync and scopes is None:
        raise ValueError("sync needs the id prefixes of the sources (`id_scope`): it deletes only under them")
    # `keep`: the id prefixes of files reported as problems; --sync never deletes their chunks
    started = time.perf_counter()
    summary = summary or IngestSummary()
    summary.chunks = len(chunks)
    prefixes = ("",) if scopes is None else tuple(dict.fromkeys(scopes))
    existing = {i for prefix in prefixes for i in index.list_ids(namespace, prefix)}
    wanted = {chunk.id for chunk in chunks}
    todo = [chunk for chunk in chunks if chunk.id not in existing]
    summary.skipped = len(chunks) - len(todo)
    # what this tool stored under the given paths and this run did not produce
    left = sorted(i for i in existing - wanted if any(in_scope(i, prefix) for prefix in prefixes))
    ours = left if sync else []
    kept_prefixes = set(keep)
    kept = [i for i in ours if f"{id_source(i)}#" in kept_prefixes]
    stale = [i for i in ours if f"{id_source(i)}#" not in kept_prefixes]
    summary.kept = len(kept)
    if kept:
        print(f"kept {_by_source(kept)}: their files were reported as problems; fix them and re-run", file=sys.stderr)
    if not sync and scopes is not None and left:
        sources = len({id_source(i) for i in left})
        print(
            f"note: {len(left)} chunks of {sources} source(s) under these paths are not from this run (edited or "
            "removed files, or other chunk settings) and stay searchable: add --sync to delete them",
            file=sys.stderr,
        )
    if dry_run:
        summary.seconds = time.perf_counter() - started
        print(f"dry run: would upsert {len(todo)} chunks and delete {_by_source(stale)}", file=sys.stderr)
        return summary
    replaced = wanted | set(stale)
    staying = [text for doc_id, text in stored if doc_id not in replaced]
    encoder = Bm25Encoder.fit([*(chunk.text for chunk in chunks), *staying])
    with tqdm(total=len(todo), desc="Embedding and upserting", unit="chunk", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vectors, sparse = document_vectors(embedder, batch), document_sparse(encoder, batch)
            summary.upserted += index.upsert(batch, vectors, namespace, sparse)
            bar.update(len(batch))
    if stale:
        summary.deleted = index.delete(stale, namespace)
        print(f"deleted {_by_source(stale)}", file=sys.stderr)
    summary.seconds = time.perf_counter() - started
    return summary


def _by_source(ids: Sequence[str]) -> str:
    """ "2: docs/a.md (1), docs/b.md (1)": how many chunks of each source."""
    counts = Counter(id_source(i) for i in ids)
    return f"{len(ids)}" + (": " + ", ".join(f"{s} ({n})" for s, n in sorted(counts.items())) if ids else "")
