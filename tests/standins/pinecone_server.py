"""A stand-in for Pinecone (API version 2026-07): the control plane (`/indexes`) and one
index's data plane (`/vectors/upsert`, `/query`, `/vectors/delete`, `/vectors/list`,
`/describe_index_stats`) on one loopback port. Vectors are kept in memory. A `cosine`
index scores by cosine; a `dotproduct` index by the dense dot product plus, when the
query has a `sparseVector`, the sparse one, as Pinecone's sparse-dense search does.
Sparse values are refused, as by Pinecone, by an index whose schema has no sparse field
(`_sparse_values`) or, in a query, whose metric is not `dotproduct`. Every request needs
the `Api-Key` header. Pinecone's size limits hold: an upsert request of at most 2 MB, a
record's metadata of at most 40,960 bytes (docs.pinecone.io, "Database limits")."""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from .base import Recorded, StandInServer, send_json

MAX_UPSERT_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40_960


def _error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    send_json(handler, status, {"error": {"code": code, "message": message}, "status": status})


def _forget_retry_budget() -> None:
    """The `pinecone` SDK keeps one retry budget per host name for the whole process (gRFC A6:
    each retryable failure spends a token, retries stop below half). Every stand-in is
    127.0.0.1, so failures injected by earlier tests would switch retries off in later ones;
    a new or reset stand-in is a fresh backend, met with the full budget a new process has."""
    from pinecone._internal.http_client import get_budget_registry

    get_budget_registry()._reset()


class PineconeStandIn(StandInServer):
    def __init__(self, api_key: str = "pc-test-key", ready_after: int = 0) -> None:
        self.api_key = api_key
        self.ready_after = ready_after  # describes before a new index reports Ready
        self.indexes: dict[str, dict[str, Any]] = {}
        self.spaces: dict[str, dict[str, tuple[list[float], dict[str, Any]]]] = {}
        self.sparse: dict[str, dict[str, dict[int, float]]] = {}  # namespace -> id -> sparse values
        self.failures: deque[int] = deque()
        self.fail_on: set[str] = set()  # paths that fail while failures are queued
        self._describes: dict[str, int] = {}
        self._data_lock = threading.Lock()
        super().__init__()
        _forget_retry_budget()

    # -- test controls ---------------------------------------------------------------
    def add_index(
        self, name: str, dimension: int = 384, metric: str = "cosine", ready: bool = True, sparse: bool = False
    ) -> None:
        self.indexes[name] = self._model(name, dimension, metric, ready, sparse)

    def fail(self, status: int, times: int = 1, paths: tuple[str, ...] = ()) -> None:
        self.failures.extend([status] * times)
        self.fail_on = set(paths)

    def data_requests(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if urlparse(r.path).path == path]

    def reset(self) -> None:
        super().reset()
        self.failures.clear()
        self.fail_on = set()
        _forget_retry_budget()

    def vectors(self, namespace: str = "") -> dict[str, tuple[list[float], dict[str, Any]]]:
        return self.spaces.get(namespace, {})

    def _model(self, name: str, dimension: int, metric: str, ready: bool, sparse: bool = False) -> dict[str, Any]:
        fields: dict[str, Any] = {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}
        if sparse:
            fields["_sparse_values"] = {"type": "sparse_vector"}
        return {
            "name": name,
            "host": self.url,
            "status": {"ready": ready, "state": "Ready" if ready else "Initializing"},
            "schema": {"fields": fields},
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "deletion_protection": "disabled",
        }

    # -- HTTP --------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        if recorded.headers.get("api-key") != self.api_key:
            _error(handler, 401, "UNAUTHENTICATED", "Invalid API Key")
            return
        url = urlparse(recorded.path)
        path, query = url.path, parse_qs(url.query)
        if self.failures and (not self.fail_on or path in self.fail_on):
            status = self.failures.popleft()
            _error(handler, status, "UNAVAILABLE" if status >= 500 else "RESOURCE_EXHAUSTED", "injected failure")
            return
        if path.startswith("/indexes"):
            self._control(handler, recorded, path)
            return
        if path == "/vectors/upsert" and len(recorded.body) > MAX_UPSERT_BYTES:
            megabytes = math.ceil(len(recorded.body) / 1024 / 1024)
            _error(
                handler,
                400,
                "INVALID_ARGUMENT",
                f"Request size {megabytes}MB exceeds the maximum supported size of 2MB",
            )
            return
        body = recorded.json() if recorded.body else {}
        with self._data_lock:
            routes = {
                "/vectors/upsert": self._upsert,
                "/query": self._query,
                "/vectors/delete": self._delete,
                "/describe_index_stats": self._stats,
                "/vectors/list": lambda b: self._list(query),
            }
            if path not in routes:
                _error(handler, 404, "NOT_FOUND", f"unknown path {path}")
                return
            status, payload = routes[path](body)
        send_json(handler, status, payload)

    def _control(self, handler: BaseHTTPRequestHandler, recorded: Recorded, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        if recorded.method == "GET" and len(parts) == 1:
            send_json(handler, 200, {"indexes": list(self.indexes.values())})
        elif recorded.method == "POST" and len(parts) == 1:
            body = recorded.json()
            name = body["name"]
            if name in self.indexes:
                _error(handler, 409, "ALREADY_EXISTS", f"Resource {name} already exists")
                return
            fields = body["schema"]["fields"]
            dense = next((f for f in fields.values() if f["type"] == "dense_vector"), None)
            if dense is None or set(fields) - {"_values", "_sparse_values"}:
                _error(handler, 400, "INVALID_ARGUMENT", "the stand-in serves vector indexes (_values, _sparse_values)")
                return
            sparse = any(f["type"] == "sparse_vector" for f in fields.values())
            ready = self.ready_after == 0
            self.indexes[name] = self._model(name, dense["dimension"], dense["metric"], ready, sparse)
            self.indexes[name]["deployment"] = body.get("deployment", self.indexes[name]["deployment"])
            self._describes[name] = 0
            send_json(handler, 201, self.indexes[name])
        elif recorded.method == "GET" and len(parts) == 2:
            model = self.indexes.get(parts[1])
            if model is None:
                _error(handler, 404, "NOT_FOUND", f"Resource {parts[1]} not found")
                return
            count = self._describes[parts[1]] = self._describes.get(parts[1], 0) + 1
            if count >= self.ready_after:
                model["status"] = {"ready": True, "state": "Ready"}
            send_json(handler, 200, model)
        else:
            _error(handler, 405, "METHOD_NOT_ALLOWED", "not supported by the stand-in")

    def _fields(self) -> dict[str, Any]:
        return next(iter(self.indexes.values()))["schema"]["fields"] if self.indexes else {}

    def _dimension(self) -> int:
        return self._fields().get("_values", {}).get("dimension", 384)

    def _metric(self) -> str:
        return self._fields().get("_values", {}).get("metric", "cosine")

    @staticmethod
    def _invalid(message: str) -> tuple[int, dict[str, Any]]:
        return 400, {"error": {"code": "INVALID_ARGUMENT", "message": message}, "status": 400}

    @staticmethod
    def _sparse_values(value: Any) -> dict[int, float] | str:
        """The wire form {"indices": [uint32], "values": [float]}, or what is wrong with it."""
        if not isinstance(value, dict) or set(value) != {"indices", "values"}:
            return "sparse values must be an object with indices and values"
        indices, values = value["indices"], value["values"]
        if len(indices) != len(values) or not indices:
            return "sparse vector must have the same non-zero number of indices and values"
        if not all(isinstance(i, int) and 0 <= i < 2**32 for i in indices) or len(set(indices)) != len(indices):
            return "sparse indices must be distinct unsigned 32-bit integers"
        return dict(zip(indices, map(float, values), strict=True))

    def _upsert(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        namespace = body.get("namespace", "")
        space = self.spaces.setdefault(namespace, {})
        sparse_space = self.sparse.setdefault(namespace, {})
        parsed: dict[str, dict[int, float]] = {}
        for vector in body["vectors"]:
            if len(vector["values"]) != self._dimension():
                return self._invalid(
                    f"Vector dimension {len(vector['values'])} does not match the dimension of the index"
                )
            if "sparseValues" in vector:
                if "_sparse_values" not in self._fields():
                    return self._invalid("Index configuration does not support sparse values")
                sparse = self._sparse_values(vector["sparseValues"])
                if isinstance(sparse, str):
                    return self._invalid(sparse)
                parsed[vector["id"]] = sparse
            size = len(json.dumps(vector.get("metadata") or {}, separators=(",", ":"), ensure_ascii=False).encode())
            if size > MAX_METADATA_BYTES:
                return self._invalid(
                    f"metadata size is {size} bytes, which exceeds the limit of 40960 bytes per vector"
                )
        for vector in body["vectors"]:
            space[vector["id"]] = (vector["values"], vector.get("metadata") or {})
            sparse_space.pop(vector["id"], None)
            if vector["id"] in parsed:
                sparse_space[vector["id"]] = parsed[vector["id"]]
        return 200, {"upsertedCount": len(body["vectors"])}

    def _query(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        namespace = body.get("namespace", "")
        query = body["vector"]
        metric = self._metric()
        sparse_query: dict[int, float] = {}
        if "sparseVector" in body:
            if metric != "dotproduct":
                return self._invalid(f"Cannot query index with metric {metric} using sparse values; use dotproduct")
            parsed = self._sparse_values(body["sparseVector"])
            if isinstance(parsed, str):
                return self._invalid(parsed)
            sparse_query = parsed
        norm_q = math.sqrt(sum(x * x for x in query)) or 1.0
        scored = []
        for vid, (values, metadata) in self.spaces.get(namespace, {}).items():
            dot = sum(a * b for a, b in zip(query, values, strict=True))
            if metric == "dotproduct":
                doc_sparse = self.sparse.get(namespace, {}).get(vid, {})
                score = dot + sum(w * doc_sparse.get(i, 0.0) for i, w in sparse_query.items())
            else:
                score = dot / (norm_q * (math.sqrt(sum(x * x for x in values)) or 1.0))
            match: dict[str, Any] = {"id": vid, "score": score, "values": []}
            if body.get("includeMetadata"):
                match["metadata"] = metadata
            scored.append(match)
        scored.sort(key=lambda m: -m["score"])
        return 200, {"matches": scored[: body["topK"]], "namespace": namespace, "usage": {"readUnits": 1}}

    def _delete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        space = self.spaces.get(body.get("namespace", ""), {})
        sparse_space = self.sparse.get(body.get("namespace", ""), {})
        for vid in body.get("ids", []):
            space.pop(vid, None)
            sparse_space.pop(vid, None)
        return 200, {}

    def _stats(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        namespaces = {(ns or "__default__"): {"vectorCount": len(space)} for ns, space in self.spaces.items() if space}
        total = sum(len(space) for space in self.spaces.values())
        return 200, {
            "namespaces": namespaces,
            "dimension": self._dimension(),
            "indexFullness": 0.0,
            "totalVectorCount": total,
        }

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        namespace = query.get("namespace", [""])[0]
        limit = int(query.get("limit", ["100"])[0])
        start = int(query.get("paginationToken", ["0"])[0])
        prefix = query.get("prefix", [""])[0]
        ids = sorted(i for i in self.spaces.get(namespace, {}) if i.startswith(prefix))
        page = ids[start : start + limit]
        payload: dict[str, Any] = {"vectors": [{"id": i} for i in page], "namespace": namespace, "usage": {}}
        if start + limit < len(ids):
            payload["pagination"] = {"next": str(start + limit)}
        return 200, payload
