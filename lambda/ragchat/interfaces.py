"""The small interfaces the chat engine is built on, and the values that cross them.

Every adapter (local models, SageMaker, Pinecone, DynamoDB, SQLite) implements one of
these protocols, so the engine never knows which world it runs in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Document:
    """A piece of knowledge to index: its text is what gets embedded and shown."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """A retrieved document with its similarity score (cosine, higher is closer)."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_source(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(self.score, 6), "text": self.text, "metadata": self.metadata}


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector as Pinecone takes it: uint32 dimensions, in increasing order, and
    their values."""

    indices: tuple[int, ...] = ()
    values: tuple[float, ...] = ()

    def dot(self, other: SparseVector) -> float:
        mine = dict(zip(self.indices, self.values, strict=True))
        return sum(mine.get(i, 0.0) * v for i, v in zip(other.indices, other.values, strict=True))

    def as_dict(self) -> dict[str, list[Any]]:
        return {"indices": list(self.indices), "values": list(self.values)}


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, as stored and as replayed into the prompt."""

    role: Role
    content: str


FinishReason = Literal["stop", "length"]


@dataclass
class GenerationReport:
    """What a generator tells about one generation, filled in as it ends: why it ended
    ("length": at `max_new_tokens`) and its size in the model's own tokens. A generator
    that cannot tell leaves a field None, and the engine estimates with `count_tokens`."""

    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class GenerationParams:
    """How to sample. `top_p` and `seed` are honoured where the backend has them."""

    temperature: float = 0.6
    top_k: int = 40
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    top_p: float | None = None
    seed: int | None = None
    # > 1 makes tokens already in the recent output less likely (llama.cpp's repeat
    # penalty); the engine takes it from the model profile
    repetition_penalty: float = 1.0
    # Not a setting: where the generator reports on this one call (see GenerationReport).
    report: GenerationReport | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Usage:
    """Tokens one turn cost: the prompt and the reply generated."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class RenderedPrompt:
    """What a generator consumes: a flat prompt string, or chat messages for models with
    a chat template (the generator applies it). Exactly one of the two is set."""

    text: str | None = None
    messages: tuple[dict[str, str], ...] | None = None

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        return "\n".join(f"[{m['role']}] {m['content']}" for m in self.messages or ())


@dataclass(frozen=True)
class ModerationResult:
    flagged: bool
    label: str
    provider: str

    def as_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "label": self.label, "provider": self.provider}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; one vector per text, independent of batch."""

    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Pinecone semantics: string ids, upsert replaces, query with metadata, namespaces.
    A query's score is the dot product of unit dense vectors (cosine), plus, for documents
    upserted with sparse vectors and a query that has one, the sparse dot product
    (Pinecone's sparse-dense score on a `dotproduct` index)."""

    def upsert(
        self,
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
        namespace: str = "",
        sparse: Sequence[SparseVector] | None = None,
    ) -> int: ...

    def query(
        self, vector: Sequence[float], top_k: int, namespace: str = "", sparse: SparseVector | None = None
    ) -> list[Match]: ...

    def delete(self, ids: Sequence[str], namespace: str = "") -> int: ...

    def count(self, namespace: str = "") -> int: ...

    def list_ids(self, namespace: str = "", prefix: str = "") -> Iterable[str]:
        """Every id in the namespace that starts with `prefix` (ingestion resumes and syncs
        from them; Pinecone lists ids by prefix, not by metadata)."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Finds the documents for a question: an embedder plus a vector index, or a service
    that embeds the text itself (the Wikipedia retrieval endpoint)."""

    def search(self, query: str, top_k: int) -> list[Match]: ...


@runtime_checkable
class Generator(Protocol):
    """A text generator: the reply streamed as text pieces, or whole (buffered requests
    use it, so a remote model can answer in one call instead of a stream)."""

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]: ...

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class Moderator(Protocol):
    def check(self, text: str) -> ModerationResult: ...


@runtime_checkable
class ConversationStore(Protocol):
    """Append-only turns per session: appends never overwrite, so concurrent requests all land."""

    def load(self, session_id: str, limit: int = 50) -> list[Turn]:
        """The most recent `limit` turns, oldest first."""
        ...

    def append(self, session_id: str, turns: Sequence[Turn]) -> None:
        """Store all turns or none."""
        ...
