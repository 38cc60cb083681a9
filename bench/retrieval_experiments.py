"""Ranking and no-answer experiments on the DESIGN half of the outside question set only.

Every candidate scores each FAQ row from one set of MiniLM embeddings; the script prints
rank-1 / top-5 / MRR for answerable questions and follow-ups, and, for the no-answer
signals, how many no-answer questions a rule cuts at <= 3% answerable cut, fitted on the
whole design half and in 5-fold cross-validation within it. It never reads the held-out
half: the choice is made here, the held-out half is scored once afterwards with
`ragchat eval` (README, "Retrieval quality on the FAQ").

    .venv/bin/python bench/retrieval_experiments.py [--all] [--no-answer-only]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.evaluation.questions import EvalQuestion, load_questions  # noqa: E402
from ragchat.knowledge import faq_documents  # noqa: E402
from ragchat.local.embedder import OnnxMiniLMEmbedder  # noqa: E402
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE  # noqa: E402
from ragchat.retrieval import STOP_WORDS, WORD, retrieval_query, stem, terms  # noqa: E402

DESIGN = ROOT / "bench" / "questions" / "outside_design.jsonl"
CURRENT = "current: text + 0.01 BM25(1.2, 0.75)"  # the product's ranking
MAX_CUT = 0.03


def sentences(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if len(p.strip()) > 20]


@dataclass
class Bm25:
    """BM25 with tunable k1, b over a list of term lists (fitted on the knowledge base)."""

    docs: list[list[str]]
    k1: float = 1.2
    b: float = 0.75

    def __post_init__(self) -> None:
        self.df: Counter[str] = Counter()
        for words in self.docs:
            self.df.update(set(words))
        self.n = len(self.docs)
        self.avg = sum(len(w) for w in self.docs) / self.n
        self.tfs = [Counter(w) for w in self.docs]
        self.lens = [len(w) for w in self.docs]

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query_terms: set[str]) -> np.ndarray:
        out = np.zeros(self.n)
        for i, (tf, length) in enumerate(zip(self.tfs, self.lens, strict=True)):
            norm = 1 - self.b + self.b * length / self.avg
            for t in query_terms:
                f = tf.get(t, 0)
                if f:
                    out[i] += self.idf(t) * f * (self.k1 + 1) / (f + self.k1 * norm)
        return out


class Corpus:
    def __init__(self, embedder: OnnxMiniLMEmbedder) -> None:
        self.docs = faq_documents(DEFAULT_KNOWLEDGE_BASE)
        self.rows = np.array([int(d.metadata["row"]) for d in self.docs])
        texts = [d.text for d in self.docs]
        self.questions = [str(d.metadata["title"]) for d in self.docs]
        self.answers = [t.split("\n", 1)[1] for t in texts]
        self.v_text = embedder.embed_array(texts)
        self.v_question = embedder.embed_array(self.questions)
        self.v_answer = embedder.embed_array(self.answers)
        self.mean = self.v_text.mean(axis=0)
        passages, owner, singles, single_owner = [], [], [], []
        for i, answer in enumerate(self.answers):
            parts = sentences(answer) or [answer]
            windows = (
                [" ".join(parts)] if len(parts) <= 2 else [" ".join(parts[j : j + 2]) for j in range(len(parts) - 1)]
            )
            passages += [f"{self.questions[i]} {w}" for w in windows]
            owner += [i] * len(windows)
            singles += parts
            single_owner += [i] * len(parts)
        self.v_pass, self.pass_owner = embedder.embed_array(passages), np.array(owner)
        self.v_sent, self.sent_owner = embedder.embed_array(singles), np.array(single_owner)
        self.term_lists = [terms(t) for t in texts]
        self.q_terms = [terms(q) for q in self.questions]
        self.a_terms = [terms(a) for a in self.answers]
        self.bm25_cache: dict[tuple, Bm25] = {}
        surface: dict[str, str] = {}  # the knowledge base's vocabulary, one surface word per term
        for d in self.docs:
            for w in WORD.findall(d.text.lower()):
                if w not in STOP_WORDS and len(w) > 2:
                    surface.setdefault(stem(w), w)
        self.vocab = sorted(surface)
        self.v_vocab = embedder.embed_array([surface[t] for t in self.vocab])
        self.embedder = embedder
        self.word_vectors: dict[str, np.ndarray] = {}

    def nearest_terms(self, text: str, tau: float, unknown_only: bool) -> set[str]:
        """Knowledge-base terms whose MiniLM vector is within `tau` of a query word's:
        a corpus-fitted query expansion (no hand-written synonyms)."""
        words = [w for w in WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 2]
        missing = [w for w in words if w not in self.word_vectors]
        if missing:
            self.word_vectors.update(zip(missing, self.embedder.embed_array(missing), strict=True))
        bm = self.bm25()
        found: set[str] = set()
        for w in words:
            if unknown_only and stem(w) in bm.df:
                continue
            sims = self.v_vocab @ self.word_vectors[w]
            found |= {self.vocab[j] for j in np.nonzero(sims >= tau)[0]}
        return found

    def bm25(self, k1: float = 1.2, b: float = 0.75, qweight: int = 1) -> Bm25:
        key = (k1, b, qweight)
        if key not in self.bm25_cache:
            docs = [q * qweight + a for q, a in zip(self.q_terms, self.a_terms, strict=True)]
            self.bm25_cache[key] = Bm25(docs, k1, b)
        return self.bm25_cache[key]

    def best_of(self, vectors: np.ndarray, owner: np.ndarray, qv: np.ndarray) -> np.ndarray:
        out = np.full(len(self.docs), -1.0)
        np.maximum.at(out, owner, vectors @ qv)
        return out


@dataclass
class Q:
    q: EvalQuestion
    text: str  # the retrieval query (follow-ups carry the previous user turn)
    vec: np.ndarray
    qterms: set[str]

    def relevant(self, rows: np.ndarray) -> np.ndarray:
        return np.isin(rows, self.q.relevant_rows)


def ranks(corpus: Corpus, qs: list[Q], score: Callable[[Q], np.ndarray]) -> dict[str, tuple[float, float, float]]:
    out = {}
    for kind in ("answerable", "followup"):
        group = [q for q in qs if q.q.kind == kind]
        if not group:
            continue
        rs = []
        for q in group:
            order = np.argsort(-score(q), kind="stable")
            hits = np.nonzero(q.relevant(corpus.rows[order]))[0]
            rs.append(int(hits[0]) + 1 if len(hits) else None)
        n = len(rs)
        out[kind] = (
            sum(r == 1 for r in rs) / n,
            sum(r is not None and r <= 5 for r in rs) / n,
            sum(1 / r for r in rs if r) / n,
        )
        out[kind + " rank-1"] = tuple(r == 1 for r in rs)
    return out


def sign_test(mine: tuple[bool, ...], theirs: tuple[bool, ...]) -> str:
    """Questions only this method ranks first / only the other does, and the exact
    two-sided sign-test p-value: is the difference more than noise?"""
    wins = sum(a and not b for a, b in zip(mine, theirs, strict=True))
    losses = sum(b and not a for a, b in zip(mine, theirs, strict=True))
    n = wins + losses
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n if n else 1.0
    return f"+{wins} -{losses} p={min(1.0, 2 * tail):.2f}"


def comparison_line(name: str, result: dict, baseline: dict, width: int) -> str:
    """One method's rank-1 / top-5 / MRR (percent, MRR as a fraction) for answerable questions
    and follow-ups, and its sign test against `baseline`: the bench scripts' report line."""
    cells = [
        " / ".join(f"{v:.3f}" if i == 2 else f"{100 * v:.1f}" for i, v in enumerate(result[k]))
        for k in ("answerable", "followup")
    ]
    versus = sign_test(result["answerable rank-1"], baseline["answerable rank-1"])
    return f"{name:{width}s} answerable {cells[0]}  follow-ups {cells[1]}  vs hybrid {versus}"


def ranking_methods(c: Corpus) -> dict[str, Callable[[Q], np.ndarray]]:
    def hybrid(w: float, k1: float = 1.2, b: float = 0.75, qweight: int = 1, dense=None):
        bm = c.bm25(k1, b, qweight)
        dense = dense or (lambda q: c.v_text @ q.vec)
        return lambda q: dense(q) + w * bm.scores(q.qterms)

    def rrf(*fns, k: int = 60):
        def score(q: Q) -> np.ndarray:
            fused = np.zeros(len(c.docs))
            for fn in fns:
                fused[np.argsort(-fn(q))] += 1 / (k + np.arange(1, len(c.docs) + 1))
            return fused

        return score

    centred = c.v_text - c.mean
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)

    def centred_dense(q: Q) -> np.ndarray:
        qv = q.vec - c.mean
        return centred @ (qv / np.linalg.norm(qv))

    text = lambda q: c.v_text @ q.vec  # noqa: E731
    multi_pass = lambda q: np.maximum(text(q), c.best_of(c.v_pass, c.pass_owner, q.vec))  # noqa: E731
    multi_sent = lambda q: np.maximum(text(q), c.best_of(c.v_sent, c.sent_owner, q.vec))  # noqa: E731
    text_plus_pass = lambda q: 0.5 * (text(q) + c.best_of(c.v_pass, c.pass_owner, q.vec))  # noqa: E731
    m: dict[str, Callable[[Q], np.ndarray]] = {
        "dense text": text,
        "BM25 (1.2, 0.75)": lambda q: c.bm25().scores(q.qterms),
        CURRENT: hybrid(0.01),
    }
    for w in (0.005, 0.01, 0.015, 0.02):
        for k1 in (0.9, 1.2, 1.6, 2.0):
            for b in (0.5, 0.75, 0.9):
                m[f"text + {w} BM25({k1}, {b})"] = hybrid(w, k1, b)
    for qw in (2, 3):
        for w in (0.005, 0.01, 0.015):
            m[f"text + {w} BM25F(question x{qw})"] = hybrid(w, qweight=qw)
    for w in (0.0, 0.005, 0.01, 0.015, 0.02):
        m[f"best of text, passages + {w} BM25"] = hybrid(w, dense=multi_pass)
        m[f"best of text, sentences + {w} BM25"] = hybrid(w, dense=multi_sent)
        m[f"mean of text, best passage + {w} BM25"] = hybrid(w, dense=text_plus_pass)
        m[f"centred text + {w} BM25"] = hybrid(w, dense=centred_dense)
    bm0 = c.bm25()

    def idf_norm(w: float):
        return lambda q: text(q) + w * bm0.scores(q.qterms) / (sum(bm0.idf(t) for t in q.qterms) or 1.0)

    def len_norm(w: float):
        return lambda q: text(q) + w * bm0.scores(q.qterms) / max(len(q.qterms), 1) ** 0.5

    def prf(beta: float, depth: int, w: float = 0.01):
        def score(q: Q) -> np.ndarray:
            first = text(q) + w * bm0.scores(q.qterms)
            top = np.argsort(-first)[:depth]
            qv = q.vec + beta * c.v_text[top].mean(axis=0)
            return c.v_text @ (qv / np.linalg.norm(qv)) + w * bm0.scores(q.qterms)

        return score

    for w in (0.1, 0.2, 0.3, 0.5):
        m[f"text + {w} BM25 / idf mass of query"] = idf_norm(w)
    for w in (0.02, 0.03, 0.05):
        m[f"text + {w} BM25 / sqrt(query terms)"] = len_norm(w)
    for beta in (0.25, 0.5, 1.0):
        for depth in (1, 3, 5):
            m[f"dense PRF beta {beta} depth {depth} + 0.01 BM25"] = prf(beta, depth)

    def expand(tau: float, weight: float, unknown_only: bool):
        def score(q: Q) -> np.ndarray:
            extra = c.nearest_terms(q.text, tau, unknown_only) - q.qterms
            return text(q) + 0.01 * (bm0.scores(q.qterms) + weight * bm0.scores(extra))

        return score

    for tau in (0.5, 0.6, 0.7):
        for weight in (0.5, 1.0):
            m[f"text + 0.01 BM25, unknown words expanded ({tau}, {weight})"] = expand(tau, weight, True)
            m[f"text + 0.01 BM25, all words expanded ({tau}, {weight})"] = expand(tau, weight, False)
    # Neighbours of a document: the documents its own question (title) retrieves with BM25.
    title_affinity = np.stack([bm0.scores(set(terms(t))) for t in c.questions])
    np.fill_diagonal(title_affinity, 0)

    def neighbours_words(k: int, alpha: float):
        """Document expansion fitted on the knowledge base: a document also matches, at
        `alpha`, the words of its k title neighbours (a product's other rows)."""
        nb = Bm25([sum((c.term_lists[j] for j in np.argsort(-title_affinity[d])[:k]), []) for d in range(len(c.docs))])
        return lambda q: text(q) + 0.01 * (bm0.scores(q.qterms) + alpha * nb.scores(q.qterms))

    def smoothed(k: int, gamma: float):
        """Each document vector moved towards the mean of its k title neighbours'."""
        out = c.v_text.copy()
        for d in range(len(c.docs)):
            out[d] += gamma * c.v_text[np.argsort(-title_affinity[d])[:k]].mean(axis=0)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return lambda q: out @ q.vec + 0.01 * bm0.scores(q.qterms)

    for k in (5, 10, 15):
        for alpha in (0.25, 0.5, 0.75, 1.0):
            m[f"text + 0.01 (BM25 + {alpha} BM25 of {k} title neighbours' words)"] = neighbours_words(k, alpha)
        for gamma in (0.25, 0.5):
            m[f"text smoothed to {k} title neighbours ({gamma}) + 0.01 BM25"] = smoothed(k, gamma)
    for k in (10, 30, 60):
        m[f"RRF(text, BM25) k={k}"] = rrf(text, lambda q: c.bm25().scores(q.qterms), k=k)
        m[f"RRF(text, passages, BM25) k={k}"] = rrf(
            text, lambda q: c.best_of(c.v_pass, c.pass_owner, q.vec), lambda q: c.bm25().scores(q.qterms), k=k
        )
    return m


def load(embedder: OnnxMiniLMEmbedder) -> list[Q]:
    if "heldout" in DESIGN.name:
        raise SystemExit("design half only")
    questions = load_questions(DESIGN)
    texts = [retrieval_query(q.question, q.prior_turns) for q in questions]
    vecs = embedder.embed_array(texts)
    return [Q(q, t, v, set(terms(t))) for q, t, v in zip(questions, texts, vecs, strict=True)]


def nested_choice(results: dict, current: str, repeats: int = 50, folds: int = 5) -> str:
    """Choosing among all these methods generalizes only if the method picked on 4/5 of the
    answerable questions also wins on the other 1/5: rank-1 of the in-fold choice against the
    current method on the same held-in folds (50 shuffles)."""
    hits = {name: np.array(r["answerable rank-1"]) for name, r in results.items()}
    rng = np.random.default_rng(0)
    chosen, base = [], []
    for _ in range(repeats):
        for test in np.array_split(rng.permutation(len(hits[current])), folds):
            train = np.setdiff1d(np.arange(len(hits[current])), test)
            best = max(hits, key=lambda n: (hits[n][train].mean(), n == current))
            chosen.append(hits[best][test].mean())
            base.append(hits[current][test].mean())
    return f"method chosen in-fold among all: rank-1 {np.mean(chosen):.3f}, current {np.mean(base):.3f} (5-fold x 50)"


def show_ranking(c: Corpus, qs: list[Q], top: int) -> None:
    results = {name: ranks(c, qs, fn) for name, fn in ranking_methods(c).items()}
    fixed = ["dense text", "BM25 (1.2, 0.75)", CURRENT]
    best = sorted(results, key=lambda n: (-results[n]["answerable"][2], -results[n]["answerable"][0]))[:top]
    base = results[CURRENT]["answerable rank-1"]

    def line(name: str) -> str:
        a, f = results[name]["answerable"], results[name]["followup"]
        paired = sign_test(results[name]["answerable rank-1"], base)
        return f"  {name:<58} {a[0]:.3f} / {a[1]:.3f} / {a[2]:.3f} | {f[0]:.3f} / {f[1]:.3f} / {f[2]:.3f} | {paired}"

    print("method: answerable rank-1 / top-5 / MRR | follow-ups rank-1 / top-5 / MRR | rank-1 vs current")
    for name in dict.fromkeys(fixed + best):
        print(line(name))
    families = {}
    for name, r in results.items():
        fam = re.sub(r"[0-9.]+", "#", name)
        if fam not in families or r["answerable"][2] > results[families[fam]]["answerable"][2]:
            families[fam] = name
    print(nested_choice(results, CURRENT))
    print("best of each family (by answerable MRR):")
    for name in families.values():
        print(line(name))


def no_answer_features(c: Corpus, qs: list[Q], score: Callable[[Q], np.ndarray]) -> dict[str, np.ndarray]:
    """Signals per question about its best match, for telling "not in this knowledge base"."""
    bm = c.bm25()
    feats: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        feats.setdefault(name, []).append(value)

    for q in qs:
        s = score(q)
        order = np.argsort(-s)
        top = order[0]
        dense = c.v_text @ q.vec
        add("top score", s[top])
        add("margin top1-top2", s[top] - s[order[1]])
        add("margin top1-top5", s[top] - s[order[4]])
        add("top dense cosine", dense[top])
        add("top BM25", bm.scores(q.qterms)[top])
        qt = {t for t in q.qterms}
        known = {t for t in qt if bm.df.get(t, 0)}
        doc_terms = set(c.term_lists[top])
        idf_all = sum(bm.idf(t) for t in qt) or 1.0
        idf_known = sum(bm.idf(t) for t in known) or 1.0
        found = sum(bm.idf(t) for t in qt & doc_terms)
        add("idf share of query terms in top doc", found / idf_all)
        add("idf share of known query terms in top doc", found / idf_known)
        add("share of query terms in top doc", len(qt & doc_terms) / max(len(qt), 1))
        add("idf of query terms missing from top doc", idf_all - found)
        add("best passage cosine in top doc", c.best_of(c.v_pass, c.pass_owner, q.vec)[top])
        add("best sentence cosine in top doc", c.best_of(c.v_sent, c.sent_owner, q.vec)[top])
        add("top question cosine", float(c.v_question[top] @ q.vec))
        add("best question cosine", float((c.v_question @ q.vec).max()))
        add("top score - mean top16", s[top] - s[order[:16]].mean())
    return {k: np.array(v) for k, v in feats.items()}


def best_cut(neg: np.ndarray, pos: np.ndarray, max_cut: float = MAX_CUT) -> float:
    """Threshold on a 'higher = answerable' signal: the one cutting the most no-answer
    (neg) questions while cutting at most max_cut of answerable (pos) ones; placed
    half-way to the next answerable value."""
    allowed = int(math.floor(max_cut * len(pos) + 1e-9))
    ordered = np.sort(pos)
    # cutting below ordered[allowed] cuts exactly `allowed` answerable ones
    return float(ordered[allowed]) - 1e-9


def auc(neg: np.ndarray, pos: np.ndarray) -> float:
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def cross_validate(fit: Callable, apply: Callable, x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0):
    """Stratified k-fold, repeated over 20 shuffles: the held-in answerable cut and no-answer cut."""
    rng = np.random.default_rng(seed)
    cut_pos = cut_neg = n_pos = n_neg = 0
    for _ in range(20):
        fold = np.empty(len(y), int)
        for label in (0, 1):
            idx = np.nonzero(y == label)[0]
            rng.shuffle(idx)
            fold[idx] = np.arange(len(idx)) % folds
        for f in range(folds):
            train, test = fold != f, fold == f
            params = fit(x[train], y[train])
            keep = apply(params, x[test])
            cut_pos += int(np.sum(~keep & (y[test] == 1)))
            cut_neg += int(np.sum(~keep & (y[test] == 0)))
            n_pos += int(np.sum(y[test] == 1))
            n_neg += int(np.sum(y[test] == 0))
    return cut_pos / n_pos, cut_neg / n_neg


def show_no_answer(c: Corpus, qs: list[Q], score: Callable[[Q], np.ndarray]) -> None:
    feats = no_answer_features(c, qs, score)
    y = np.array([0 if q.q.kind == "no_answer" else 1 for q in qs])
    print(f"\nno-answer signals, design half ({(y == 0).sum()} no-answer, {(y == 1).sum()} answerable + follow-ups)")
    print("  signal: AUC | no-answer cut at <=3% answerable cut (whole half) | 5-fold CV: answerable / no-answer cut")

    def fit1(x, yy):
        return best_cut(x[yy == 0], x[yy == 1])

    for name, values in feats.items():
        t = fit1(values, y)
        whole = np.mean(values[y == 0] < t)
        cv = cross_validate(fit1, lambda t, x: x >= t, values, y)
        print(f"  {name:<44} {auc(values[y == 0], values[y == 1]):.3f} | {whole:.2f} | {cv[0]:.3f} / {cv[1]:.2f}")
    # two signals: a linear combination a + alpha * b, alpha chosen on the training fold
    names = list(feats)
    print("  pairs (score + alpha x signal, alpha fitted in-fold), best by CV no-answer cut:")
    rows = []
    alphas = np.array([-2, -1, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1, 2, 4])
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x = np.stack([feats[a], feats[b]], axis=1)

            def fit2(xx, yy):
                best = None
                for al in alphas:
                    comb = xx[:, 0] + al * xx[:, 1]
                    t = best_cut(comb[yy == 0], comb[yy == 1])
                    gain = np.mean(comb[yy == 0] < t)
                    if best is None or gain > best[0]:
                        best = (gain, al, t)
                return best[1:]

            def apply2(p, xx):
                return xx[:, 0] + p[0] * xx[:, 1] >= p[1]

            whole = fit2(x, y)
            comb = x[:, 0] + whole[0] * x[:, 1]
            cv = cross_validate(fit2, apply2, x, y)
            rows.append((cv[1], cv[0], f"{a} + {whole[0]} x {b}", np.mean(comb[y == 0] < whole[1])))
    for cvn, cvp, label, whole in sorted(rows, reverse=True)[:12]:
        print(f"    {label:<90} whole {whole:.2f} | CV {cvp:.3f} / {cvn:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-answer-only", action="store_true")
    parser.add_argument("--all", action="store_true", help="print every ranking variant, not only the best")
    args = parser.parse_args()
    embedder = OnnxMiniLMEmbedder()
    corpus = Corpus(embedder)
    qs = load(embedder)
    if not args.no_answer_only:
        show_ranking(corpus, qs, 10_000 if args.all else args.top)
    current = ranking_methods(corpus)[CURRENT]
    show_no_answer(corpus, qs, current)


if __name__ == "__main__":
    main()
