"""The vector index on Pinecone, through the `pinecone` SDK.

The API key lives in Secrets Manager: it is read at first use, cached for a few minutes
(so a rotated key is picked up), re-read at once when Pinecone rejects it, and never
logged. Any Pinecone failure becomes `RetrievalUnavailable`, so the engine still answers,
without retrieved context, and says so."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ChatServiceError, RetrievalUnavailable
from ..interfaces import Document, Match, SparseVector

log = logging.getLogger(__name__)
STEP = "retrieval"
UPSERT_BATCH = 100
# Pinecone refuses an upsert request over 2 MB and a record whose metadata is over 40,960 bytes
# (docs.pinecone.io, "Database limits"). Requests are cut by their JSON size as well as by count,
# with room left for the SDK's own envelope.
MAX_REQUEST_BYTES = 2 * 1024 * 1024 * 9 // 10
MAX_METADATA_BYTES = 40_960


class RecordTooLarge(ChatServiceError):
    """A record Pinecone would refuse for its size, found before the request is sent."""

    status = 400
    code = "record_too_large"


def record_metadata(document: Document) -> dict[str, Any]:
    """What Pinecone stores with a record: the document's metadata and its text."""
    return {**document.metadata, "text": document.text}


def oversized_records(documents: Sequence[Document]) -> list[str]:
    """What is wrong with each document whose record Pinecone would refuse for its metadata size
    (`ragchat ingest` bounds chunks and their fields so that none is; other callers may not)."""
    problems = []
    for document in documents:
        size = json_size(record_metadata(document))
        if size > MAX_METADATA_BYTES:
            problems.append(
                f"chunk {document.id}: its metadata (the chunk's text and its source's fields) is {size:,} bytes, "
                f"over Pinecone's {MAX_METADATA_BYTES:,} per record"
            )
    return problems


def json_size(value: Any) -> int:
    """Bytes of `value` as JSON on the wire (UTF-8, compact), as the SDK sends it."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def request_batches(records: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Records in order, cut into requests of at most UPSERT_BATCH records and MAX_REQUEST_BYTES."""
    batch: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = json_size(record) + 1
        if batch and (len(batch) == UPSERT_BATCH or size + record_size > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch


class SecretApiKey:
    """The Pinecone API key from one Secrets Manager secret, cached for `max_age` seconds.

    The secret holds the key as plain text, or JSON with an `api_key` (or `apiKey`) field."""

    def __init__(self, client: Any, secret_id: str, max_age: float = 300.0) -> None:
        self.client = client
        self.secret_id = secret_id
        self.max_age = max_age
        self._value: str | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._value is None or time.monotonic() - self._read_at > self.max_age:
                self._value = self._read()
                self._read_at = time.monotonic()
            return self._value

    def _read(self) -> str:
        try:
            raw = self.client.get_secret_value(SecretId=self.secret_id)["SecretString"]
        except Exception as exc:  # any failure means no key; the type is enough
            raise RetrievalUnavailable(
                f"cannot read the Pinecone API key from Secrets Manager ({type(exc).__name__})", step=STEP
            ) from None
        key = raw.strip()
        if key.startswith("{"):
            try:
                data = json.loads(key)
                key = str(data.get("api_key") or data.get("apiKey") or "")
            except json.JSONDecodeError:
                key = ""
        if not key:
            raise RetrievalUnavailable(
                f"the secret {self.secret_id} holds no Pinecone API key; set it with "
                f"`aws secretsmanager put-secret-value --secret-id {self.secret_id} --secret-string <KEY>`",
                step=STEP,
            )
        return key


class PineconeVectorIndex:
    """Pinecone semantics are the interface's semantics: string ids, upsert replaces,
    namespaces. Document text is stored in metadata `text`. Sparse vectors go with the
    dense ones (`sparse_values`, `sparse_vector`): Pinecone takes them on a `dotproduct`
    index only, where it scores dense + sparse dot products."""

    def __init__(
        self,
        index_name: str,
        api_key: Callable[..., str],
        *,
        host: str = "",
        control_plane_host: str = "",
        timeout: float = 10.0,
        max_retries: int = 2,
    ) -> None:
        self.index_name = index_name
        self.api_key = api_key
        self.host = host
        self.control_plane_host = control_plane_host
        self.timeout = timeout
        self.max_retries = max_retries
        self._index: Any = None
        self._index_key: str | None = None
        self._lock = threading.Lock()

    # -- client ------------------------------------------------------------------------
    def client(self, key: str | None = None) -> Any:
        """The control-plane client. Its retry settings reach the control plane only: in
        pinecone 10.2 the data-plane `Index` keeps the SDK default (3 retries with
        backoff), which the engine's retrieval deadline bounds."""
        from pinecone import Pinecone, RetryConfig

        return Pinecone(
            api_key=key or self.api_key(),
            host=self.control_plane_host or None,
            timeout=self.timeout,
            retry_config=RetryConfig(max_retries=self.max_retries, backoff_factor=0.2, max_wait=2.0),
            source_tag="ragchat",
        )

    def _data_plane(self) -> tuple[Any, str]:
        """The index client and the key it sends."""
        key = self.api_key()
        with self._lock:
            if self._index is None or key != self._index_key:
                pc = self.client(key)
                self._index = pc.index(host=self.host) if self.host else pc.index(name=self.index_name)
                self._index_key = key
            return self._index, key

    def _call(self, operation: str, fn: Callable[[Any], Any]) -> Any:
        from pinecone.errors import PineconeError, UnauthorizedError

        try:
            index, used = self._data_plane()
            try:
                return fn(index)
            except UnauthorizedError:
                if self.api_key(refresh=True) == used:  # the secret still holds the key refused
                    raise
                return fn(self._data_plane()[0])  # rotated since we cached it: once more with the new key
        except UnauthorizedError:
            raise RetrievalUnavailable(
                f"Pinecone rejected the API key while trying to {operation}; check the key in the secret",
                step=STEP,
            ) from None
        except PineconeError as exc:
            log.warning("pinecone %s failed: %s", operation, type(exc).__name__)
            raise RetrievalUnavailable(
                f"Pinecone index {self.index_name} is unavailable ({type(exc).__name__})", step=STEP
            ) from None

    # -- VectorIndex -------------------------------------------------------------------
    def query(
        self, vector: Sequence[float], top_k: int, namespace: str = "", sparse: SparseVector | None = None
    ) -> list[Match]:
        options: dict[str, Any] = {"vector": list(vector), "top_k": top_k, "namespace": namespace}
        if sparse is not None and sparse.indices:
            options["sparse_vector"] = sparse.as_dict()
        response = self._call("query", lambda index: index.query(**options, include_metadata=True))
        matches = []
        for match in response.matches:
            metadata = dict(match.metadata or {})
            text = str(metadata.pop("text", ""))
            matches.append(Match(match.id, float(match.score), text, metadata))
        return matches

    def upsert(
        self,
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
        namespace: str = "",
        sparse: Sequence[SparseVector] | None = None,
    ) -> int:
        refused = oversized_records(documents)
        if refused:
            raise RecordTooLarge(refused[0], step=STEP)
        records: list[dict[str, Any]] = [
            {"id": doc.id, "values": list(vec), "metadata": record_metadata(doc)}
            for doc, vec in zip(documents, vectors, strict=True)
        ]
        for record, sv in zip(records, sparse or (), strict=False):
            if sv.indices:  # Pinecone refuses an empty sparse vector
                record["sparse_values"] = sv.as_dict()
        total = 0
        for batch in request_batches(records):
            response = self._call("upsert", lambda index, b=batch: index.upsert(vectors=b, namespace=namespace))
            total += response.upserted_count
        return total

    def delete(self, ids: Sequence[str], namespace: str = "") -> int:
        ids = list(ids)
        for start in range(0, len(ids), 1000):
            batch = ids[start : start + 1000]
            self._call("delete", lambda index, b=batch: index.delete(ids=b, namespace=namespace))
        return len(ids)

    def count(self, namespace: str = "") -> int:
        stats = self._call("describe index stats", lambda index: index.describe_index_stats())
        summary = stats.namespaces.get(namespace or "__default__") or stats.namespaces.get(namespace)
        return summary.vector_count if summary else 0

    def list_ids(self, namespace: str = "", prefix: str = "") -> Iterator[str]:
        pages = self._call("list ids", lambda index: list(index.list(prefix=prefix or None, namespace=namespace)))
        for page in pages:
            for item in page.vectors:
                yield item.id
