"""Test doubles for the engine's interfaces: deterministic, instant, and recording what
they were asked, so engine tests can assert on prompts and stored turns."""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence

from ragchat.interfaces import (
    Document,
    GenerationParams,
    Match,
    ModerationResult,
    RenderedPrompt,
    SparseVector,
    Turn,
)

# An FAQ-style row (its question, then sentences of its answer), for the context and passage tests.
SPOT_ROW = (
    "How does Managed Spot Training work?\n"
    "Managed Spot Training uses spare EC2 capacity. "
    "It checkpoints your job so that an interruption does not lose work. "
    "You can save up to 90% compared with on-demand instances. "
    "Spot capacity is available in every Region where SageMaker is."
)


def count_words(text: str) -> int:
    """The doubles' token count: a word is a token."""
    return len(text.split())


class BagOfWordsEmbedder:
    """Hashes words into a 64-d vector: texts sharing words are close. Deterministic."""

    dimension = 64

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        if self.delay:
            time.sleep(self.delay)
        out = []
        for text in texts:
            vector = [0.0] * self.dimension
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            out.append([x / norm for x in vector])
        return out


class MemoryIndex:
    """Pinecone's sparse-dense scoring, by brute force: dense dot product plus sparse dot product."""

    def __init__(self, delay: float = 0.0) -> None:
        self.spaces: dict[str, dict[str, tuple[Document, list[float], SparseVector]]] = {}
        self.delay = delay
        self.queries: list[tuple[list[float], int, str]] = []
        self.sparse_queries: list[SparseVector | None] = []

    def upsert(self, documents, vectors, namespace: str = "", sparse=None) -> int:
        space = self.spaces.setdefault(namespace, {})
        sparse = sparse or [SparseVector()] * len(documents)
        for doc, vec, sv in zip(documents, vectors, sparse, strict=True):
            space[doc.id] = (doc, list(vec), sv)
        return len(documents)

    def query(self, vector, top_k: int, namespace: str = "", sparse: SparseVector | None = None) -> list[Match]:
        self.queries.append((list(vector), top_k, namespace))
        self.sparse_queries.append(sparse)
        if self.delay:
            time.sleep(self.delay)
        scored = [
            Match(
                doc.id,
                sum(a * b for a, b in zip(vector, vec, strict=True)) + (sparse.dot(sv) if sparse else 0.0),
                doc.text,
                dict(doc.metadata),
            )
            for doc, vec, sv in self.spaces.get(namespace, {}).values()
        ]
        return sorted(scored, key=lambda m: -m.score)[:top_k]

    def delete(self, ids, namespace: str = "") -> int:
        space = self.spaces.get(namespace, {})
        return sum(space.pop(i, None) is not None for i in ids)

    def count(self, namespace: str = "") -> int:
        return len(self.spaces.get(namespace, {}))

    def list_ids(self, namespace: str = "", prefix: str = "") -> list[str]:
        return sorted(i for i in self.spaces.get(namespace, {}) if i.startswith(prefix))


class RecordingGenerator:
    """Streams a scripted reply in pieces and records every prompt it was given."""

    def __init__(self, reply: str = "Spot training works on all instances.", pieces: int = 4) -> None:
        self.reply = reply
        self.pieces = pieces
        self.prompts: list[RenderedPrompt] = []
        self.params: list[GenerationParams] = []
        self.buffered_calls = 0

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        """A word is a token: at most `max_new_tokens` words, reported like a model would."""
        self.prompts.append(prompt)
        self.params.append(params)
        words = re.findall(r"\s*\S+", self.reply)
        reply = "".join(words[: params.max_new_tokens])
        if params.report is not None:
            params.report.prompt_tokens = self.count_tokens(prompt.describe())
            params.report.completion_tokens = min(len(words), params.max_new_tokens)
            params.report.finish_reason = "length" if len(words) > params.max_new_tokens else "stop"
        size = max(1, math.ceil(len(reply) / self.pieces))
        for start in range(0, len(reply), size):
            yield reply[start : start + size]

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        self.buffered_calls += 1
        return "".join(self.stream(prompt, params))

    def count_tokens(self, text: str) -> int:
        return count_words(text)


class ModelRun:
    """One call of TickingGenerator.stream: what it was asked, and the moments the test
    waits on (started generating, first token out, stream closed)."""

    def __init__(self, prompt: RenderedPrompt) -> None:
        self.prompt = prompt
        self.started = threading.Event()
        self.first_token = threading.Event()
        self.closed = threading.Event()


class TickingGenerator:
    """A model that keeps producing a token every `tick` seconds until the test sets
    `finish` (then one more token and the end): a stand-in for a long answer. With
    `prefill` cleared, each run waits for it before its first token, like a long
    prompt's prefill. Every run is recorded, in the order the model got them."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.finish = threading.Event()
        self.prefill = threading.Event()
        self.prefill.set()
        self.runs: list[ModelRun] = []

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        run = ModelRun(prompt)
        self.runs.append(run)
        run.started.set()
        try:
            self.prefill.wait()
            while True:
                yield "tok "
                run.first_token.set()
                if self.finish.is_set():
                    return
                time.sleep(self.tick)
        finally:
            run.closed.set()

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        return "".join(self.stream(prompt, params))

    def count_tokens(self, text: str) -> int:
        return count_words(text)

    def order(self, labels: Sequence[str]) -> list[str]:
        """Which of `labels` each run's prompt holds, in the order the model took them."""
        return [next(label for label in labels if label in run.prompt.describe()) for run in self.runs]


class ScriptedModerator:
    """Flags any text containing one of `blocked_words`; can be slowed to test overlap."""

    def __init__(self, blocked_words: Sequence[str] = ("FORBIDDEN",), delay: float = 0.0) -> None:
        self.blocked_words = blocked_words
        self.delay = delay
        self.checked: list[str] = []

    def check(self, text: str) -> ModerationResult:
        self.checked.append(text)
        if self.delay:
            time.sleep(self.delay)
        flagged = any(w in text for w in self.blocked_words)
        return ModerationResult(flagged, "needs intervention" if flagged else "casual", "test-double")


class MemoryStore:
    def __init__(self) -> None:
        self.turns: dict[str, list[Turn]] = {}
        self._lock = threading.Lock()

    def load(self, session_id: str, limit: int = 50) -> list[Turn]:
        with self._lock:
            return list(self.turns.get(session_id, []))[-limit:]

    def append(self, session_id: str, turns: Sequence[Turn]) -> None:
        with self._lock:
            self.turns.setdefault(session_id, []).extend(turns)


FAQ_DOCS = [
    Document(
        "row-90",
        "Which instances can I use with Managed Spot Training?\nAll instances supported in SageMaker.",
        {"source": "faq.csv", "row": 90},
    ),
    Document(
        "row-84",
        "What is Managed Spot Training?\nIt uses EC2 Spot instances to cut training cost.",
        {"source": "faq.csv", "row": 84},
    ),
    Document(
        "row-0", "What is Amazon SageMaker?\nA fully managed machine learning service.", {"source": "faq.csv", "row": 0}
    ),
]
