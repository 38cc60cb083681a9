"""Knowledge-base documents: reading the FAQ CSV and giving every chunk a stable id."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

from .interfaces import Document, Embedder, SparseVector
from .retrieval import Bm25Encoder


def stable_id(source: str, position: int | str, text: str) -> str:
    """Same source, position and content give the same id, so re-indexing never duplicates;
    changed content gets a new id, so stale vectors can be found and deleted."""
    digest = hashlib.sha256(f"{source}\x00{position}\x00{text}".encode()).hexdigest()
    return digest[:32]


def normalise_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def faq_documents(path: Path) -> list[Document]:
    """The SageMaker FAQ: no header, columns question and answer, UTF-8 with BOM, CRLF in
    some fields. One document per row, question and answer embedded together."""
    documents = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row_number, row in enumerate(csv.reader(handle)):
            if len(row) < 2:
                raise ValueError(
                    f"{path.name}: row {row_number} has {len(row)} column(s), expected question and answer"
                )
            question, answer = normalise_text(row[0]), normalise_text(row[1])
            text = f"{question}\n{answer}"
            documents.append(
                Document(
                    id=stable_id(path.name, row_number, text),
                    text=text,
                    metadata={"source": path.name, "row": row_number, "title": question},
                )
            )
    return documents


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def document_vectors(embedder: Embedder, documents: Sequence[Document]) -> list[list[float]]:
    """The dense vectors to index: each document's whole text (an FAQ row's question and
    answer together). The earlier boost (adding the question's own vector) matched
    paraphrases of the FAQ's questions but ranked worse on questions in users' own words;
    the README's retrieval table has both."""
    return embedder.embed([d.text for d in documents])


def document_sparse(encoder: Bm25Encoder, documents: Sequence[Document]) -> list[SparseVector]:
    """The sparse BM25 vectors to index with `document_vectors`."""
    return encoder.encode_documents([d.text for d in documents])
