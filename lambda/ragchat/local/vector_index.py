"""A FAISS vector index with Pinecone's semantics, persisted in a folder.

String ids, upsert replaces, exact inner-product search over unit vectors (= cosine),
metadata returned with matches, independent namespaces. Every change is written to disk
atomically, so a crash never leaves a half-written index. A change another process writes
(`ragchat ingest` while `ragchat serve` runs) is picked up at the next query: the manifest,
written last, is checked on each query (one stat call)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from ..interfaces import Document, Match


def _safe(namespace: str) -> str:
    return "ns-" + (re.sub(r"[^A-Za-z0-9_-]", "_", namespace) or "_default")


class _Namespace:
    def __init__(self, dimension: int) -> None:
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.docs: dict[int, Document] = {}
        self.ids: dict[str, int] = {}
        self.next_key = 0


class FaissVectorIndex:
    def __init__(self, folder: Path | str, dimension: int) -> None:
        self.folder = Path(folder)
        self.dimension = dimension
        self._lock = threading.RLock()
        self._spaces: dict[str, _Namespace] = {}
        self._loaded_stamp: tuple[int, int, int] | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- persistence -------------------------------------------------------------------
    def _manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._manifest_path().stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size  # each save is a new file (os.replace)

    def _reload_if_changed(self) -> None:
        """Another process wrote the index since we loaded or saved it: load it again."""
        if self._stamp() != self._loaded_stamp:
            self._spaces = {}
            self._load()

    def _load(self) -> None:
        path = self._manifest_path()
        self._loaded_stamp = self._stamp()
        if not path.exists():
            return
        manifest = json.loads(path.read_text())
        if manifest["dimension"] != self.dimension:
            raise ValueError(
                f"the index in {self.folder} has dimension {manifest['dimension']}, the embedder {self.dimension}"
            )
        for namespace in manifest["namespaces"]:
            space = _Namespace(self.dimension)
            stem = self.folder / _safe(namespace)
            space.index = faiss.read_index(str(stem.with_suffix(".faiss")))
            records = json.loads(stem.with_suffix(".json").read_text())
            for key, record in records["docs"].items():
                doc = Document(record["id"], record["text"], record["metadata"])
                space.docs[int(key)] = doc
                space.ids[doc.id] = int(key)
            space.next_key = records["next_key"]
            self._spaces[namespace] = space

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _save(self, namespace: str) -> None:
        space = self._spaces[namespace]
        stem = self.folder / _safe(namespace)
        self._write(stem.with_suffix(".faiss"), faiss.serialize_index(space.index).tobytes())
        records = {
            "next_key": space.next_key,
            "docs": {str(k): {"id": d.id, "text": d.text, "metadata": d.metadata} for k, d in space.docs.items()},
        }
        self._write(stem.with_suffix(".json"), json.dumps(records).encode())
        manifest = {"dimension": self.dimension, "namespaces": sorted(self._spaces)}
        self._write(self._manifest_path(), json.dumps(manifest).encode())
        self._loaded_stamp = self._stamp()

    # -- VectorIndex -------------------------------------------------------------------
    def upsert(self, documents: Sequence[Document], vectors: Sequence[Sequence[float]], namespace: str = "") -> int:
        if len(documents) != len(vectors):
            raise ValueError("documents and vectors differ in length")
        if not documents:
            return 0
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(documents), -1)
        if matrix.shape[1] != self.dimension:
            raise ValueError(f"vector dimension {matrix.shape[1]} does not match the index dimension {self.dimension}")
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.setdefault(namespace, _Namespace(self.dimension))
            latest = {doc.id: row for row, doc in enumerate(documents)}  # the last copy of an id wins
            replaced = [space.ids[i] for i in latest if i in space.ids]
            if replaced:
                space.index.remove_ids(np.array(replaced, dtype=np.int64))
            keys = []
            for doc_id, row in latest.items():
                key = space.next_key
                space.next_key += 1
                space.docs.pop(space.ids.get(doc_id, -1), None)
                space.ids[doc_id] = key
                space.docs[key] = documents[row]
                keys.append(key)
            space.index.add_with_ids(matrix[list(latest.values())], np.array(keys, dtype=np.int64))
            self._save(namespace)
            return len(latest)

    def query(self, vector: Sequence[float], top_k: int, namespace: str = "") -> list[Match]:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            if space is None or space.index.ntotal == 0 or top_k <= 0:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            scores, keys = space.index.search(query, min(top_k, space.index.ntotal))
            return [
                Match(doc.id, float(score), doc.text, dict(doc.metadata))
                for score, key in zip(scores[0], keys[0], strict=True)
                if key >= 0 and (doc := space.docs.get(int(key))) is not None
            ]

    def delete(self, ids: Sequence[str], namespace: str = "") -> int:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            if space is None:
                return 0
            keys = [space.ids.pop(i) for i in ids if i in space.ids]
            if keys:
                space.index.remove_ids(np.array(keys, dtype=np.int64))
                for key in keys:
                    space.docs.pop(key, None)
                self._save(namespace)
            return len(keys)

    def count(self, namespace: str = "") -> int:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            return space.index.ntotal if space else 0

    def list_ids(self, namespace: str = "") -> list[str]:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            return sorted(space.ids) if space else []
