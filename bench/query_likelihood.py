"""Query-likelihood reranking (UPR: Sachan et al., 2022) with the local GGUF models, on the DESIGN
half of the outside question set only: each of the hybrid's top 10 rows is scored by the mean
log-probability the model gives the question after the row ("Passage: … Please write a question
based on this passage. Question:"), alone and added to the hybrid score. It prints rank-1 / top-5 /
MRR, the sign test against the hybrid, and the seconds per question (README, "Second round").

    .venv/bin/python bench/query_likelihood.py [MODEL.gguf]   # default: the local SmolLM2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retrieval_experiments as rx

from ragchat.local.embedder import OnnxMiniLMEmbedder
from ragchat.local.generator import default_model_path

TOP = 10
PROMPT = "Passage: {}\nPlease write a question based on this passage.\nQuestion:"


def question_logprob(llm, passage: str, question: str) -> float:
    """Mean log-probability of the question's tokens after the passage."""
    prefix = llm.tokenize(PROMPT.format(passage).encode(), add_bos=True)
    asked = llm.tokenize((" " + question).encode(), add_bos=False)
    tokens = (prefix + asked)[-1000:]
    llm.reset()
    llm.eval(tokens)
    start = len(tokens) - len(asked)
    logits = np.array(llm.scores[start - 1 : len(tokens) - 1])
    top = logits.max(axis=1, keepdims=True)
    logprobs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return float(np.mean(logprobs[np.arange(len(asked)), tokens[start:]]))


def main() -> None:
    from llama_cpp import Llama

    model = sys.argv[1] if len(sys.argv) > 1 else str(default_model_path())
    embedder = OnnxMiniLMEmbedder()
    corpus, questions = rx.Corpus(embedder), rx.load(embedder)
    current_ranking = rx.ranking_methods(corpus)[rx.CURRENT]
    llm = Llama(model_path=model, n_ctx=1024, logits_all=True, verbose=False, n_threads=2, n_batch=512)
    texts = [d.text for d in corpus.docs]
    hybrid = {id(q): current_ranking(q) for q in questions}
    likelihood: dict[int, np.ndarray] = {}
    started = time.perf_counter()
    scored = [q for q in questions if q.q.kind in ("answerable", "followup")]
    for q in scored:
        top = np.argsort(-hybrid[id(q)])[:TOP]
        likelihood[id(q)] = np.full(len(texts), -np.inf)
        likelihood[id(q)][top] = [question_logprob(llm, texts[i], q.text) for i in top]
    seconds = (time.perf_counter() - started) / len(scored)

    def rerank(weight: float | None):
        def score(q: rx.Q) -> np.ndarray:
            h, lp = hybrid[id(q)], likelihood[id(q)]
            out = np.full(len(h), -np.inf)
            top = np.isfinite(lp)
            out[top] = lp[top] if weight is None else h[top] + weight * lp[top]
            out[~top] = h[~top] - 1e6  # the rest keep the hybrid's order, below the ten
            return out

        return score

    current = rx.ranks(corpus, scored, rerank(0.0))
    print(f"{Path(model).name}: {seconds:.1f} s per question for {TOP} rows")
    for name, weight in (
        ("hybrid", 0.0),
        ("likelihood alone", None),
        *((f"hybrid + {w} x likelihood", w) for w in (0.1, 0.2, 0.3)),
    ):
        print(rx.comparison_line(name, rx.ranks(corpus, scored, rerank(weight)), current, 28))


if __name__ == "__main__":
    main()
