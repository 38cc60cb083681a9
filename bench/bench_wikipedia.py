"""The Wikipedia retrieval handler on this machine: build a Wikipedia-format index from the
FAQ's answers (each answer one article, 3-sentence snippets, MiniLM fp32 through
transformers), then time requests through the endpoint's handler (query embedding, FAISS,
re-embedding the neighbours for widening). Contriever-base is ~5x MiniLM-L6's compute, so
expect several times these latencies on the endpoint's 4 vCPUs with the real model."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.ingest.sources import SourceText  # noqa: E402
from ragchat.knowledge import faq_documents  # noqa: E402
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE  # noqa: E402
from ragchat.local.wikipedia import build_index, load_handler  # noqa: E402

QUESTIONS = [
    "Which instances can I use with Managed Spot Training?",
    "How do I monitor a model in production?",
    "What does SageMaker Neo do?",
    "Can I bring my own container?",
    "How is training billed?",
]


def main() -> None:
    handler = load_handler()
    documents = faq_documents(DEFAULT_KNOWLEDGE_BASE)
    sources = [SourceText("faq", d.text, {"title": d.metadata.get("title", d.id)}) for d in documents]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        summary = build_index(sources, Path(folder))
        seconds = time.perf_counter() - start
        print(f"build: {summary.snippets} snippets, {summary.articles} articles: {seconds:.1f} s (with encoder load)")
        retriever = handler.WikipediaRetriever(folder)
        for window in (0, 5):
            timings = []
            for _ in range(4):
                for question in QUESTIONS:
                    body = json.dumps({"inputs": question, "parameters": {"k": 5, "window": window}})
                    t = time.perf_counter()
                    handler.handle(retriever, body)
                    timings.append((time.perf_counter() - t) * 1000)
            timings.sort()
            p95 = timings[int(0.95 * (len(timings) - 1))]
            p50 = statistics.median(timings)
            print(f"k=5 window={window}: p50 {p50:.0f} ms, p95 {p95:.0f} ms ({len(timings)} requests)")


if __name__ == "__main__":
    main()
