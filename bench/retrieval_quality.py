"""Retrieval quality on the SageMaker FAQ: this product's method against the original's.

For each question set, the share whose relevant FAQ row is at rank 1, in the top 5, and
among the documents actually placed in the prompt (the `sources`).

- faq_questions: the FAQ's own 154 questions (rows with identical questions all count).
- paraphrases_dev: paraphrases used while designing the retrieval (tuning set).
- paraphrases_heldout: other paraphrases, never used for tuning: the product's score.

The original method indexed answers only and stopped the context at the first text that
did not fit the 1000-character budget."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.context import select_context  # noqa: E402
from ragchat.interfaces import Match  # noqa: E402
from ragchat.knowledge import faq_documents  # noqa: E402
from ragchat.local.embedder import OnnxMiniLMEmbedder  # noqa: E402
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE, ensure_knowledge_base  # noqa: E402
from ragchat.local.vector_index import FaissVectorIndex  # noqa: E402

BUDGET = 1000


def original_context_rule(matches: list[Match], budget: int = BUDGET) -> list[Match]:
    """The original: stop at the first text that does not fit."""
    chosen, used = [], 0
    for m in matches:
        cost = len(m.text.strip()) + 2
        if used + cost > budget:
            break
        chosen.append(m)
        used += cost
    return chosen


def load_question_set(name: str) -> list[dict]:
    """A question set from bench/questions/NAME.jsonl: {"q": question, "rows": [relevant FAQ rows]}."""
    path = ROOT / "bench" / "questions" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def question_sets(docs) -> dict[str, list[dict]]:
    by_question: dict[str, list[int]] = {}
    for d in docs:
        by_question.setdefault(d.metadata["title"], []).append(d.metadata["row"])
    sets = {"faq_questions": [{"q": q, "rows": rows} for q, rows in by_question.items()]}
    for name in ("paraphrases_dev", "paraphrases_heldout"):
        sets[name] = load_question_set(name)
    return sets


def score(items, retrieve, context_rule) -> tuple[float, float, float]:
    rank1 = top5 = in_prompt = 0
    for item in items:
        matches = retrieve(item["q"])
        rows = [m.metadata["row"] for m in matches]
        relevant = set(item["rows"])
        rank1 += rows[0] in relevant
        top5 += bool(relevant & set(rows[:5]))
        in_prompt += bool(relevant & {m.metadata["row"] for m in context_rule(matches)})
    n = len(items)
    return rank1 / n, top5 / n, in_prompt / n


def main() -> None:
    embedder = OnnxMiniLMEmbedder()
    docs = faq_documents(DEFAULT_KNOWLEDGE_BASE)
    with tempfile.TemporaryDirectory() as tmp:
        index = FaissVectorIndex(Path(tmp) / "index", embedder.dimension)
        ensure_knowledge_base(DEFAULT_KNOWLEDGE_BASE, embedder, index, Path(tmp) / "state.json", progress=False)

        def ours(question: str) -> list[Match]:
            return index.query(embedder.embed([question])[0], 5)

        answers = [d.text.split("\n", 1)[1] for d in docs]
        answer_vectors = embedder.embed_array(answers)

        def original(question: str) -> list[Match]:
            scores = answer_vectors @ embedder.embed_array([question])[0]
            top = np.argsort(-scores)[:5]
            return [Match(docs[i].id, float(scores[i]), answers[i], docs[i].metadata) for i in top]

        print(f"{'question set':<22}{'n':>4}  {'method':<9}{'rank@1':>8}{'top-5':>8}{'in prompt':>11}")
        for name, items in question_sets(docs).items():
            for label, retrieve, rule in (
                ("original", original, original_context_rule),
                ("ours", ours, lambda m: select_context(m, BUDGET)),
            ):
                r1, t5, sources = score(items, retrieve, rule)
                print(f"{name:<22}{len(items):>4}  {label:<9}{r1:>8.1%}{t5:>8.1%}{sources:>11.1%}")


if __name__ == "__main__":
    main()
