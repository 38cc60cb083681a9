"""A FAISS vector index with Pinecone's semantics, persisted in a folder.

String ids, upsert replaces, exact inner-product search over unit vectors (= cosine),
metadata returned with matches, independent namespaces. Documents may carry a sparse
vector; a query with one scores dense + sparse dot products, as Pinecone's sparse-dense
query on a `dotproduct` index does.

Every change is a new generation of a namespace's files (`ns-NAME.GEN.faiss` and `.json`),
committed by replacing the manifest that names them, so a crash or Ctrl-C at any point
leaves the previous index whole (vectors and documents were written one after the other:
an interrupt between them left vectors that no document owned). Changes are serialized
across processes by an exclusive lock on `index.lock` (two `ragchat ingest` runs at once
each gave new entries the same keys, and the last to save dropped the other's documents),
and each change starts from the newest committed state. A change another process commits
(`ragchat ingest` while `ragchat serve` runs) is picked up at the next query: the
manifest's stamp is checked on each query (one stat call)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from ..interfaces import Document, Match, SparseVector

try:
    import fcntl
except ImportError:  # Windows: no lock between processes (one writer at a time is then up to you)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
# With a sparse query, the dense ranking's best CANDIDATES documents and every document
# sharing a term with the query are scored exactly; no other document can rank higher.
DENSE_CANDIDATES = 100


def _safe(namespace: str) -> str:
    """The file name an index written before generations used: "" and "_default" (or "a.b"
    and "a_b") share it."""
    return "ns-" + (re.sub(r"[^A-Za-z0-9_-]", "_", namespace) or "_default")


def _unique(namespace: str) -> str:
    """The file name of a namespace's generations: readable, and distinct per namespace."""
    return f"{_safe(namespace)}-{zlib.crc32(namespace.encode('utf-8', 'surrogatepass')):08x}"


def _files(stem: Path) -> tuple[Path, Path]:
    """A generation's vectors and documents."""
    return stem.with_name(stem.name + ".faiss"), stem.with_name(stem.name + ".json")


class _Namespace:
    def __init__(self, dimension: int) -> None:
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.docs: dict[int, Document] = {}
        self.ids: dict[str, int] = {}
        self.sparse: dict[int, SparseVector] = {}
        self.postings: dict[int, dict[int, float]] = {}  # sparse dimension -> {key: value}
        self.next_key = 0

    def set_sparse(self, key: int, vector: SparseVector | None) -> None:
        self.drop_sparse(key)
        if vector is None or not vector.indices:
            return
        self.sparse[key] = vector
        for index, value in zip(vector.indices, vector.values, strict=True):
            self.postings.setdefault(index, {})[key] = value

    def drop_sparse(self, key: int) -> None:
        old = self.sparse.pop(key, None)
        for index in old.indices if old else ():
            self.postings[index].pop(key, None)

    def sparse_scores(self, query: SparseVector) -> dict[int, float]:
        scores: dict[int, float] = {}
        for index, weight in zip(query.indices, query.values, strict=True):
            for key, value in self.postings.get(index, {}).items():
                scores[key] = scores.get(key, 0.0) + weight * value
        return scores


class FaissVectorIndex:
    def __init__(self, folder: Path | str, dimension: int) -> None:
        self.folder = Path(folder)
        self.dimension = dimension
        self._lock = threading.RLock()
        self._spaces: dict[str, _Namespace] = {}
        self._files: dict[str, int | None] = {}  # namespace -> the generation of its files (None: unversioned)
        self._generation = 0
        self._loaded_stamp: tuple[int, int, int] | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock, self._file_lock(exclusive=False):
            self._load()

    # -- persistence -------------------------------------------------------------------
    def _manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    @contextmanager
    def _file_lock(self, exclusive: bool) -> Iterator[None]:
        """Changes hold it exclusively; a load holds it shared, so no change removes the
        files of the generation being read. An index this process may read but not write
        (a read-only mount, another user's files) is read without the lock: nobody who can
        change it is this process, and a change needs the lock file to be writable anyway."""
        if fcntl is None:
            yield
            return
        try:
            handle = open(self.folder / "index.lock", "a+b" if exclusive else "rb")  # noqa: SIM115
        except OSError:
            if exclusive:
                raise
            yield
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._manifest_path().stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size  # each save is a new file (os.replace)

    def _reload_if_changed(self, locked: bool = False) -> None:
        """Another process committed a change since we loaded or saved: load it again
        (`locked`: the caller holds the exclusive lock already)."""
        if self._stamp() != self._loaded_stamp:
            if locked:
                self._load()
            else:
                with self._file_lock(exclusive=False):
                    self._load()

    def _stem(self, namespace: str, generation: int | None) -> Path:
        if generation is None:
            return self.folder / _safe(namespace)
        return self.folder / f"{_unique(namespace)}.{generation}"

    def _written_stem(self, namespace: str, generation: int | None) -> Path:
        """Where a committed generation lies: its own name, or the one an early version of
        generations used (`ns-NAME.GEN`, without the hash), which is read and then replaced."""
        stem = self._stem(namespace, generation)
        early = self.folder / f"{_safe(namespace)}.{generation}"
        if generation is not None and not _files(stem)[1].exists() and _files(early)[1].exists():
            return early
        return stem

    def _load(self) -> None:
        """Read the committed index; on any failure the state loaded before stays (and so does
        its stamp, so the next call tries again)."""
        path = self._manifest_path()
        stamp = self._stamp()
        if not path.exists():
            self._spaces, self._files, self._generation, self._loaded_stamp = {}, {}, 0, stamp
            return
        manifest = json.loads(path.read_text())
        if manifest["dimension"] != self.dimension:
            raise ValueError(
                f"the index in {self.folder} has dimension {manifest['dimension']}, the embedder {self.dimension}"
            )
        named = manifest["namespaces"]  # a list: an index written before generations
        files = dict.fromkeys(named) if isinstance(named, list) else named
        spaces: dict[str, _Namespace] = {}
        for namespace, generation in files.items():
            space = _Namespace(self.dimension)
            vectors, documents = _files(self._written_stem(namespace, generation))
            space.index = faiss.read_index(str(vectors))
            records = json.loads(documents.read_text())
            for key, record in records["docs"].items():
                doc = Document(record["id"], record["text"], record["metadata"])
                space.docs[int(key)] = doc
                space.ids[doc.id] = int(key)
                if "sparse" in record:
                    space.set_sparse(int(key), SparseVector(*map(tuple, record["sparse"])))
            space.next_key = records["next_key"]
            self._repair(namespace, space)
            spaces[namespace] = space
        self._spaces, self._files, self._generation = spaces, files, manifest.get("generation", 0)
        self._loaded_stamp = stamp

    def _repair(self, namespace: str, space: _Namespace) -> None:
        """Entries whose vectors and document disagree, as an earlier version could leave
        them (a key with two vectors, a vector without a document, a document without a
        vector), are dropped: `ragchat ingest` adds them again, since their ids are gone."""
        keys = Counter(faiss.vector_to_array(space.index.id_map).tolist())
        broken = {k for k, n in keys.items() if n > 1} | (keys.keys() ^ space.docs.keys())
        if not broken:
            return
        space.index.remove_ids(np.array(sorted(broken), dtype=np.int64))
        for key in broken:
            if (doc := space.docs.pop(key, None)) is not None:
                space.ids.pop(doc.id, None)
            space.drop_sparse(key)
        space.next_key = max([space.next_key, *(k + 1 for k in keys)])
        log.warning(
            "the index in %s (namespace %r) had %d entries whose vectors and documents disagreed; they are "
            "dropped: run `ragchat ingest` on their sources again to restore them",
            self.folder,
            namespace,
            len(broken),
        )

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the manifest names it, also across a power loss
        os.replace(tmp, path)

    def _save(self, namespace: str) -> None:
        """A new generation of the namespace's files, then the manifest naming it (the commit),
        then the files no generation names any more. The caller holds the exclusive lock."""
        space = self._spaces[namespace]
        generation = self._generation + 1
        current = _files(self._stem(namespace, generation))
        self._write(current[0], faiss.serialize_index(space.index).tobytes())
        records = {
            "next_key": space.next_key,
            "docs": {str(k): self._record(space, k, d) for k, d in space.docs.items()},
        }
        self._write(current[1], json.dumps(records).encode())
        previous = self._written_stem(namespace, self._files[namespace]) if namespace in self._files else None
        files = {**self._files, namespace: generation}
        manifest = {"dimension": self.dimension, "generation": generation, "namespaces": files}
        self._write(self._manifest_path(), json.dumps(manifest).encode())
        self._files, self._generation = files, generation
        self._loaded_stamp = self._stamp()
        # the files the previous generation was read from, unless another namespace still reads them (two
        # unversioned namespaces whose names sanitize alike); then leftovers of an interrupted change
        others = {self._written_stem(n, g) for n, g in files.items() if n != namespace}
        if previous is not None and previous not in others:
            for path in _files(previous):
                path.unlink(missing_ok=True)
        for old in self.folder.glob(_unique(namespace) + ".*"):
            if old not in current:
                old.unlink(missing_ok=True)

    @staticmethod
    def _record(space: _Namespace, key: int, doc: Document) -> dict:
        record: dict = {"id": doc.id, "text": doc.text, "metadata": doc.metadata}
        if key in space.sparse:
            record["sparse"] = [list(space.sparse[key].indices), list(space.sparse[key].values)]
        return record

    # -- VectorIndex -------------------------------------------------------------------
    def upsert(
        self,
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
        namespace: str = "",
        sparse: Sequence[SparseVector] | None = None,
    ) -> int:
        if len(documents) != len(vectors) or (sparse is not None and len(sparse) != len(documents)):
            raise ValueError("documents and vectors differ in length")
        if not documents:
            return 0
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(documents), -1)
        if matrix.shape[1] != self.dimension:
            raise ValueError(f"vector dimension {matrix.shape[1]} does not match the index dimension {self.dimension}")
        with self._lock, self._file_lock(exclusive=True):
            self._reload_if_changed(locked=True)
            space = self._spaces.setdefault(namespace, _Namespace(self.dimension))
            latest = {doc.id: row for row, doc in enumerate(documents)}  # the last copy of an id wins
            replaced = [space.ids[i] for i in latest if i in space.ids]
            if replaced:
                space.index.remove_ids(np.array(replaced, dtype=np.int64))
            keys = []
            for doc_id, row in latest.items():
                key = space.next_key
                space.next_key += 1
                old = space.ids.get(doc_id, -1)
                space.docs.pop(old, None)
                space.drop_sparse(old)
                space.ids[doc_id] = key
                space.docs[key] = documents[row]
                space.set_sparse(key, sparse[row] if sparse is not None else None)
                keys.append(key)
            space.index.add_with_ids(matrix[list(latest.values())], np.array(keys, dtype=np.int64))
            self._save(namespace)
            return len(latest)

    def query(
        self, vector: Sequence[float], top_k: int, namespace: str = "", sparse: SparseVector | None = None
    ) -> list[Match]:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            if space is None or space.index.ntotal == 0 or top_k <= 0:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            wanted = top_k if sparse is None else max(top_k, DENSE_CANDIDATES)
            found, keys = space.index.search(query, min(wanted, space.index.ntotal))
            scores = {int(k): float(s) for s, k in zip(found[0], keys[0], strict=True) if k >= 0}
            if sparse is not None:
                lexical = space.sparse_scores(sparse)
                for key in lexical.keys() - scores.keys():
                    scores[key] = float(space.index.reconstruct(key) @ query[0])
                scores = {key: score + lexical.get(key, 0.0) for key, score in scores.items()}
            best = sorted(scores.items(), key=lambda item: -item[1])[:top_k]
            return [
                Match(doc.id, score, doc.text, dict(doc.metadata))
                for key, score in best
                if (doc := space.docs.get(key)) is not None
            ]

    def delete(self, ids: Sequence[str], namespace: str = "") -> int:
        with self._lock, self._file_lock(exclusive=True):
            self._reload_if_changed(locked=True)
            space = self._spaces.get(namespace)
            if space is None:
                return 0
            keys = [space.ids.pop(i) for i in ids if i in space.ids]
            if keys:
                space.index.remove_ids(np.array(keys, dtype=np.int64))
                for key in keys:
                    space.docs.pop(key, None)
                    space.drop_sparse(key)
                self._save(namespace)
            return len(keys)

    def stored_texts(self, namespace: str = "") -> list[tuple[str, str]]:
        """(id, text) of every document: `ragchat ingest` fits BM25 on them with its own."""
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            return [(doc.id, doc.text) for doc in space.docs.values()] if space else []

    def count(self, namespace: str = "") -> int:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            return space.index.ntotal if space else 0

    def list_ids(self, namespace: str = "", prefix: str = "") -> list[str]:
        with self._lock:
            self._reload_if_changed()
            space = self._spaces.get(namespace)
            return sorted(i for i in space.ids if i.startswith(prefix)) if space else []
