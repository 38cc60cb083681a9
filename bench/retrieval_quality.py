"""Retrieval quality on the SageMaker FAQ: every ranking method tried, the original's, the
previous product's and this product's, scored with `ragchat eval`'s own scoring.

Question sets (bench/questions/):
- outside_design: written outside the project (see the README); the method was chosen on it.
- outside_heldout: the other half, never used for a choice. Scored only with --heldout.
- paraphrases_dev / paraphrases_heldout: older paraphrases, written while designing an
  earlier method, kept as regression checks.
- faq_questions: the FAQ's own 153 distinct questions.

Per kind of question: rank-1 / top-5 / MRR, relevant among the prompt's sources (for the
three complete methods), and no-answer questions given no sources.

    .venv/bin/python bench/retrieval_quality.py [--heldout]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.engine import EngineSettings  # noqa: E402
from ragchat.evaluation.questions import EvalQuestion, load_questions  # noqa: E402
from ragchat.evaluation.report import Outcome, scores  # noqa: E402
from ragchat.interfaces import Match  # noqa: E402
from ragchat.knowledge import faq_documents  # noqa: E402
from ragchat.local.embedder import OnnxMiniLMEmbedder  # noqa: E402
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE, LocalSettings, build_local_engine  # noqa: E402
from ragchat.retrieval import Bm25Encoder, encode_query, retrieval_query  # noqa: E402

QUESTIONS = ROOT / "bench" / "questions"
ORIGINAL_BUDGET = 1000


def original_context_rule(matches: list[Match], budget: int = ORIGINAL_BUDGET) -> list[Match]:
    """The original: stop at the first text that does not fit."""
    chosen, used = [], 0
    for m in matches:
        cost = len(m.text.strip()) + 2
        if used + cost > budget:
            break
        chosen.append(m)
        used += cost
    return chosen


def previous_context_rule(matches: list[Match], budget: int = ORIGINAL_BUDGET) -> list[Match]:
    """The previous product's: whole texts in rank order, a text that does not fit skipped
    (a later, shorter one may fit), the top hit trimmed rather than dropped."""
    chosen: list[Match] = []
    used = 0
    for m in matches:
        text = m.text.strip()
        if used + len(text) + 2 <= budget:
            chosen.append(m)
            used += len(text) + 2
        elif not chosen:
            chosen.append(m)  # trimmed to the budget
            used = budget
    return chosen


def sentences(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if len(p.strip()) > 20]


class Methods:
    """Every candidate as a score for each FAQ row, from one set of embeddings."""

    def __init__(self, embedder: OnnxMiniLMEmbedder) -> None:
        self.embedder = embedder
        self.docs = faq_documents(DEFAULT_KNOWLEDGE_BASE)
        texts = [d.text for d in self.docs]
        questions = [str(d.metadata["title"]) for d in self.docs]
        answers = [t.split("\n", 1)[1] for t in texts]
        self.v_text, self.v_question, self.v_answer = (embedder.embed_array(x) for x in (texts, questions, answers))
        boosted = self.v_text + self.v_question
        self.v_boosted = boosted / np.linalg.norm(boosted, axis=1, keepdims=True)
        passages, self.owner = [], []  # the question with each pair of consecutive answer sentences
        for i, answer in enumerate(answers):
            parts = sentences(answer) or [answer]
            windows = (
                [" ".join(parts)] if len(parts) <= 2 else [" ".join(parts[j : j + 2]) for j in range(len(parts) - 1)]
            )
            passages += [f"{questions[i]} {w}" for w in windows]
            self.owner += [i] * len(windows)
        self.v_passages, self.owner = embedder.embed_array(passages), np.array(self.owner)
        encoder = Bm25Encoder.fit(texts)
        self.sparse = encoder.encode_documents(texts)
        self.answers = answers

    def bm25(self, query: str) -> np.ndarray:
        q = encode_query(query, 1.0)
        return np.array([q.dot(s) for s in self.sparse])

    def best_passage(self, qv: np.ndarray) -> np.ndarray:
        scores = self.v_passages @ qv
        out = np.full(len(self.docs), -1.0)
        np.maximum.at(out, self.owner, scores)
        return out

    def candidates(self) -> dict[str, Callable[[np.ndarray, str], np.ndarray]]:
        def rrf(*rankings: np.ndarray) -> np.ndarray:
            fused = np.zeros(len(self.docs))
            for r in rankings:
                fused[np.argsort(-r)] += 1 / (60 + np.arange(1, len(self.docs) + 1))
            return fused

        multi = lambda qv: np.maximum(self.v_text @ qv, self.best_passage(qv))  # noqa: E731
        return {
            "answers only (the original's vectors)": lambda qv, q: self.v_answer @ qv,
            "question + answer, question vector added (previous)": lambda qv, q: self.v_boosted @ qv,
            "question only": lambda qv, q: self.v_question @ qv,
            "question + answer text": lambda qv, q: self.v_text @ qv,
            "several vectors: best of text, question+passages": lambda qv, q: np.maximum.reduce(
                [self.v_text @ qv, self.v_question @ qv, self.best_passage(qv)]
            ),
            "several vectors: best of text, passages": lambda qv, q: multi(qv),
            "BM25 alone": lambda qv, q: self.bm25(q),
            "reciprocal-rank fusion: text, BM25": lambda qv, q: rrf(self.v_text @ qv, self.bm25(q)),
            "hybrid: text + 0.005 x BM25": lambda qv, q: self.v_text @ qv + 0.005 * self.bm25(q),
            "hybrid: text + 0.01 x BM25 (this product)": lambda qv, q: self.v_text @ qv + 0.01 * self.bm25(q),
            "hybrid: text + 0.02 x BM25": lambda qv, q: self.v_text @ qv + 0.02 * self.bm25(q),
            "hybrid: best of text, passages + 0.01 x BM25": lambda qv, q: multi(qv) + 0.01 * self.bm25(q),
        }

    def ranked(self, scores: np.ndarray, top_k: int, texts: list[str] | None = None) -> list[Match]:
        order = np.argsort(-scores)[:top_k]
        texts = texts or [d.text for d in self.docs]
        return [Match(self.docs[i].id, float(scores[i]), texts[i], self.docs[i].metadata) for i in order]


def question_sets(heldout: bool) -> dict[str, list[EvalQuestion]]:
    docs = faq_documents(DEFAULT_KNOWLEDGE_BASE)
    by_question: dict[str, list[int]] = {}
    for d in docs:
        by_question.setdefault(str(d.metadata["title"]), []).append(int(d.metadata["row"]))
    names = ["outside_design", *(["outside_heldout"] if heldout else []), "paraphrases_dev", "paraphrases_heldout"]
    sets = {name: load_questions(QUESTIONS / f"{name}.jsonl") for name in names}
    sets["faq_questions"] = [EvalQuestion(q, q, "answerable", tuple(rows)) for q, rows in by_question.items()]
    return sets


def row(label: str, result: dict[str, dict[str, float]], with_prompt: bool) -> str:
    cells = []
    for kind in ("answerable", "followup"):
        if kind in result:
            s = result[kind]
            prompt = f" / {s['in_prompt']:.0%}" if with_prompt else ""
            cells.append(f"{kind} {s['rank1']:.0%} / {s['top5']:.0%} / MRR {s['mrr']:.2f}{prompt}")
    if "no_answer" in result and with_prompt:
        cells.append(f"no-answer given no sources {result['no_answer']['no_sources']:.0%}")
    return f"  {label:<52} " + "; ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout", action="store_true", help="also score the outside held-out half (the headline)")
    args = parser.parse_args()
    embedder = OnnxMiniLMEmbedder()
    methods = Methods(embedder)
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_local_engine(LocalSettings(data_dir=Path(tmp)), progress=False)
        for name, questions in question_sets(args.heldout).items():
            print(f"{name} (n={len(questions)}): rank-1 / top-5 / MRR [/ relevant in prompt]")
            plain = embedder.embed_array([q.question for q in questions])
            followed = embedder.embed_array([retrieval_query(q.question, q.prior_turns) for q in questions])
            original = [
                Outcome(q, r, original_context_rule(r))
                for q, qv in zip(questions, plain, strict=True)
                for r in [methods.ranked(methods.v_answer @ qv, 5, methods.answers)]
            ]
            print(row("the original (answers only, 1000-char stop rule)", scores(original), True))
            previous = [
                Outcome(q, r, previous_context_rule(r))
                for q, qv in zip(questions, plain, strict=True)
                for r in [methods.ranked(methods.v_boosted @ qv, EngineSettings.retrieval_top_k)]
            ]
            print(row("previous product (question vector added, 1000 chars)", scores(previous), True))
            for label, method in methods.candidates().items():
                outcomes = [
                    Outcome(q, methods.ranked(method(qv, retrieval_query(q.question, q.prior_turns)), 16), [])
                    for q, qv in zip(questions, followed, strict=True)
                ]
                print(row(label, scores(outcomes), False))
            product = [Outcome(q, *engine.lookup(q.question, q.prior_turns)) for q in questions]
            print(row("THIS PRODUCT (hybrid, follow-ups, token budget)", scores(product), True))


if __name__ == "__main__":
    main()
