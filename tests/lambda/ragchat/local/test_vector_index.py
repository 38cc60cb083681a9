import json
import threading

import numpy as np
import pytest

from ragchat.interfaces import Document, SparseVector
from ragchat.local.vector_index import DENSE_CANDIDATES, FaissVectorIndex, _unique

WAIT = 20.0  # a hang fails the test after this; it is not what is measured


def unit(*values: float) -> list[float]:
    v = np.array(values, dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


def docs(*ids: str) -> list[Document]:
    return [Document(i, f"text {i}", {"n": i}) for i in ids]


def test_query_returns_cosine_order_with_metadata(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a", "b", "c"), [unit(1, 0, 0), unit(0, 1, 0), unit(1, 1, 0)])
    matches = index.query(unit(1, 0.1, 0), top_k=2)
    assert [m.id for m in matches] == ["a", "c"]
    assert matches[0].score == pytest.approx(0.995, abs=1e-3)
    assert matches[0].text == "text a" and matches[0].metadata == {"n": "a"}


def test_upsert_replaces_by_id(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a"), [unit(1, 0, 0)])
    index.upsert([Document("a", "new text", {"v": 2})], [unit(0, 0, 1)])
    assert index.count() == 1
    (match,) = index.query(unit(0, 0, 1), 5)
    assert (match.id, match.text, match.metadata) == ("a", "new text", {"v": 2})


def test_namespaces_are_independent(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a"), [unit(1, 0, 0)], namespace="one")
    index.upsert(docs("b"), [unit(1, 0, 0)], namespace="two")
    assert [m.id for m in index.query(unit(1, 0, 0), 5, "one")] == ["a"]
    assert index.count("two") == 1 and index.count() == 0 and index.query(unit(1, 0, 0), 5) == []


def test_delete_and_persistence(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a", "b"), [unit(1, 0, 0), unit(0, 1, 0)])
    assert index.delete(["a", "missing"]) == 1
    reopened = FaissVectorIndex(tmp_path, 3)
    assert reopened.list_ids() == ["b"] and [m.id for m in reopened.query(unit(0, 1, 0), 5)] == ["b"]
    reopened.upsert(docs("c"), [unit(0, 0, 1)])  # keys keep counting after a reload
    assert FaissVectorIndex(tmp_path, 3).list_ids() == ["b", "c"]


def test_wrong_dimension_is_refused(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    with pytest.raises(ValueError, match="dimension"):
        index.upsert(docs("a"), [[1.0, 0.0]])
    index.upsert(docs("a"), [unit(1, 0, 0)])
    with pytest.raises(ValueError, match="dimension 3"):
        FaissVectorIndex(tmp_path, 384)


def test_duplicate_ids_in_one_batch_keep_the_last(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert([Document("a", "first"), Document("a", "second")], [unit(1, 0, 0), unit(0, 1, 0)])
    assert index.count() == 1 and index.query(unit(0, 1, 0), 1)[0].text == "second"
    assert json.loads((tmp_path / "manifest.json").read_text())["namespaces"] == {"": 1}


def test_hybrid_query_scores_dense_plus_sparse_like_pinecone_and_survives_a_reload(tmp_path):
    """Pinecone's sparse-dense score on a dotproduct index: dense dot + sparse dot, for every
    document, also those far down the dense ranking (here past DENSE_CANDIDATES)."""
    rng = np.random.default_rng(0)
    dense = [unit(*rng.normal(size=8)) for _ in range(DENSE_CANDIDATES + 50)]
    ids = [f"d{i}" for i in range(len(dense))]
    sparse = [SparseVector((i % 7, 100 + i), (1.0, 2.0)) for i in range(len(dense))]
    index = FaissVectorIndex(tmp_path, 8)
    index.upsert(docs(*ids), dense, sparse=sparse)
    query, query_sparse = unit(*rng.normal(size=8)), SparseVector((3, 100 + len(dense) - 1), (0.05, 5.0))
    expected = sorted(
        ((float(np.dot(query, v)) + query_sparse.dot(s), i) for v, s, i in zip(dense, sparse, ids, strict=True)),
        reverse=True,
    )
    for reopened in (index, FaissVectorIndex(tmp_path, 8)):
        got = reopened.query(query, 5, sparse=query_sparse)
        assert [m.id for m in got] == [i for _, i in expected[:5]]
        assert got[0].id == ids[-1]  # its sparse match lifts the last document to the top
        assert [round(m.score, 5) for m in got] == [round(s, 5) for s, _ in expected[:5]]
    assert [m.id for m in index.query(query, 3)] == [i for _, i in sorted(
        ((float(np.dot(query, v)), i) for v, i in zip(dense, ids, strict=True)), reverse=True)[:3]]  # fmt: skip


def test_replacing_or_deleting_a_document_drops_its_sparse_terms(tmp_path):
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a", "b"), [unit(1, 0, 0), unit(0, 1, 0)], sparse=[SparseVector((7,), (9.0,)), SparseVector()])
    assert index.query(unit(0, 1, 0), 1, sparse=SparseVector((7,), (1.0,)))[0].id == "a"
    index.upsert(docs("a"), [unit(1, 0, 0)])  # replaced without sparse values
    assert index.query(unit(0, 1, 0), 1, sparse=SparseVector((7,), (1.0,)))[0].id == "b"
    index.upsert(docs("c"), [unit(0, 0, 1)], sparse=[SparseVector((7,), (9.0,))])
    index.delete(["c"])
    assert index.query(unit(0, 1, 0), 1, sparse=SparseVector((7,), (1.0,)))[0].id == "b"


def test_a_change_written_by_another_process_is_served_at_the_next_query(tmp_path):
    """`ragchat ingest` writes the index while `ragchat serve` holds it open."""
    serving = FaissVectorIndex(tmp_path, 3)
    serving.upsert(docs("faq"), [unit(1, 0, 0)])
    ingesting = FaissVectorIndex(tmp_path, 3)  # the other process
    ingesting.upsert(docs("new"), [unit(0, 1, 0)])
    assert [m.id for m in serving.query(unit(0, 1, 0), top_k=1)] == ["new"]
    assert serving.count() == 2
    ingesting.delete(["faq"])
    assert serving.list_ids() == ["new"]
    serving.upsert(docs("own"), [unit(0, 0, 1)])  # its own write keeps the other's documents
    assert sorted(FaissVectorIndex(tmp_path, 3).list_ids()) == ["new", "own"]


def test_two_writers_at_once_lose_nothing_and_share_no_key(tmp_path):
    """Two `ragchat ingest` runs on one data folder each handed out keys from their own copy
    of the index, and the last to save dropped the other's documents: vectors then stood
    for other documents' text. Writer B reaches the lock while A is saving: it must wait for
    A's commit and build on it."""
    a, b = FaissVectorIndex(tmp_path, 3), FaissVectorIndex(tmp_path, 3)
    b_waits = threading.Event()

    class SignallingLock:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, exclusive):
            if exclusive:
                b_waits.set()
            return self.inner(exclusive)

    b._file_lock = SignallingLock(b._file_lock)
    save = a._save

    def save_after_b_tried(namespace):
        assert b_waits.wait(WAIT)  # B is at (or past) the lock while A holds it
        save(namespace)

    a._save = save_after_b_tried
    writer_b = threading.Thread(target=lambda: b.upsert(docs("b1"), [unit(0, 1, 0)]))
    a_thread = threading.Thread(target=lambda: a.upsert(docs("a1"), [unit(1, 0, 0)]))
    a_thread.start()
    writer_b.start()
    a_thread.join(WAIT)
    writer_b.join(WAIT)

    fresh = FaissVectorIndex(tmp_path, 3)
    assert fresh.list_ids() == ["a1", "b1"] and fresh.count() == 2
    assert fresh.query(unit(1, 0, 0), 1)[0].text == "text a1" and fresh.query(unit(0, 1, 0), 1)[0].text == "text b1"


def test_writer_processes_at_once_keep_every_document_with_its_own_vector(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    writer = Path(__file__).with_name("index_writer.py")
    start = tmp_path / "start"
    procs = [
        subprocess.Popen([sys.executable, str(writer), str(tmp_path / "index"), name, str(start), "20"])
        for name in ("alpha", "bravo", "charlie")
    ]
    start.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]

    sys.path.insert(0, str(writer.parent))
    from index_writer import vector

    index = FaissVectorIndex(tmp_path / "index", 8)
    ids = index.list_ids()
    assert len(ids) == index.count() == 600
    for doc_id in ids[::7]:
        best = index.query(vector(doc_id).tolist(), 1)[0]
        assert (best.id, best.text) == (doc_id, f"text of {doc_id}") and best.score == pytest.approx(1.0, abs=1e-5)


def test_an_interrupted_change_leaves_the_previous_index_whole(tmp_path, monkeypatch):
    """Vectors, documents and manifest were replaced one after the other: Ctrl-C between the
    first two left vectors that no document owned, and later entries reused their keys."""
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a"), [unit(1, 0, 0)])
    write = FaissVectorIndex._write

    def interrupted(self, path, data):
        if path.name == "manifest.json":
            raise KeyboardInterrupt
        write(self, path, data)

    monkeypatch.setattr(FaissVectorIndex, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        index.upsert(docs("b", "c"), [unit(0, 1, 0), unit(0, 0, 1)])
    monkeypatch.undo()

    reopened = FaissVectorIndex(tmp_path, 3)
    assert reopened.list_ids() == ["a"] and reopened.count() == 1
    reopened.upsert(docs("d"), [unit(0, 1, 1)])
    again = FaissVectorIndex(tmp_path, 3)
    assert again.list_ids() == ["a", "d"] and again.count() == 2
    assert again.query(unit(0, 1, 1), 1)[0].text == "text d"
    leftovers = sorted(p.name for p in tmp_path.glob("ns-*"))
    assert leftovers == [f"{_unique('')}.2.faiss", f"{_unique('')}.2.json"]


def test_an_index_an_earlier_version_left_inconsistent_is_repaired_on_load(tmp_path, caplog):
    """The files as the old concurrent writers left them: one key holding two vectors, and a
    vector with no document. Those entries are dropped (ingest adds them back), the rest kept."""
    import faiss

    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(3))
    vectors = np.array([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1), unit(1, 1, 0)], dtype=np.float32)
    flat.add_with_ids(vectors, np.array([0, 1, 1, 2], dtype=np.int64))
    (tmp_path / "ns-_default.faiss").write_bytes(faiss.serialize_index(flat).tobytes())
    records = {
        "next_key": 2,
        "docs": {str(k): {"id": i, "text": f"text {i}", "metadata": {}} for k, i in [(0, "a"), (1, "b")]},
    }
    (tmp_path / "ns-_default.json").write_text(json.dumps(records))
    (tmp_path / "manifest.json").write_text(json.dumps({"dimension": 3, "namespaces": [""]}))  # the old format

    index = FaissVectorIndex(tmp_path, 3)

    assert index.list_ids() == ["a"] and index.count() == 1
    assert "had 2 entries whose vectors and documents disagreed" in caplog.text
    index.upsert(docs("b"), [unit(0, 1, 0)])  # re-ingested
    assert FaissVectorIndex(tmp_path, 3).query(unit(0, 1, 0), 1)[0].text == "text b"
    assert sorted(p.name for p in tmp_path.glob("ns-*")) == [f"{_unique('')}.1.faiss", f"{_unique('')}.1.json"]


def test_namespaces_whose_names_sanitize_alike_keep_their_own_files(tmp_path):
    """ "" and "_default" (or "a.b" and "a_b") share a file name: saving one deleted the other's
    current files, and the index no longer loaded."""
    index = FaissVectorIndex(tmp_path, 3)
    for namespace, vector in (("_default", unit(1, 0, 0)), ("", unit(0, 1, 0)), ("a.b", unit(0, 0, 1))):
        index.upsert(docs(f"in-{namespace}"), [vector], namespace=namespace)
    index.upsert(docs("again"), [unit(1, 1, 0)], namespace="_default")
    index.upsert(docs("a_b"), [unit(1, 0, 1)], namespace="a_b")

    fresh = FaissVectorIndex(tmp_path, 3)
    assert fresh.list_ids("_default") == ["again", "in-_default"] and fresh.list_ids("") == ["in-"]
    assert fresh.list_ids("a.b") == ["in-a.b"] and fresh.list_ids("a_b") == ["a_b"]


def test_an_index_is_read_without_writing_to_its_folder(tmp_path):
    """Every load opened index.lock for writing: an index on a read-only mount, or another
    user's, no longer opened even to query."""
    FaissVectorIndex(tmp_path, 3).upsert(docs("a"), [unit(1, 0, 0)])
    (tmp_path / "index.lock").unlink()  # as copied to, or mounted from, where it cannot be created
    reader = FaissVectorIndex(tmp_path, 3)
    assert reader.query(unit(1, 0, 0), 1)[0].id == "a"
    assert not (tmp_path / "index.lock").exists()


def test_a_load_that_fails_keeps_what_was_loaded_and_tries_again(tmp_path, monkeypatch):
    """The stamp was taken before reading: a load that failed half way left an empty index
    served until the next change, and a change then wrote a manifest without the others."""
    writer = FaissVectorIndex(tmp_path, 3)
    writer.upsert(docs("a"), [unit(1, 0, 0)], namespace="one")
    reader = FaissVectorIndex(tmp_path, 3)
    writer.upsert(docs("b"), [unit(0, 1, 0)], namespace="two")
    import faiss

    read_index = faiss.read_index
    monkeypatch.setattr(faiss, "read_index", lambda path: (_ for _ in ()).throw(RuntimeError("read failed")))
    with pytest.raises(RuntimeError):
        reader.query(unit(1, 0, 0), 1, namespace="one")
    assert reader._spaces["one"].ids == {"a": 0}  # the old state stays
    monkeypatch.setattr(faiss, "read_index", read_index)
    assert reader.query(unit(0, 1, 0), 1, namespace="two")[0].id == "b"  # tried again, now whole


def test_an_index_of_the_first_generation_format_is_read_and_replaced(tmp_path):
    """Generation files were first named without the namespace's hash (`ns-_default.1.faiss`):
    such an index did not load any more."""
    index = FaissVectorIndex(tmp_path, 3)
    index.upsert(docs("a"), [unit(1, 0, 0)])
    index.upsert(docs("b"), [unit(0, 1, 0)], namespace="docs")
    for stem, early in ((_unique(""), "ns-_default"), (_unique("docs"), "ns-docs")):
        for path in tmp_path.glob(f"{stem}.*"):
            path.rename(tmp_path / path.name.replace(stem, early))

    again = FaissVectorIndex(tmp_path, 3)
    assert again.list_ids() == ["a"] and again.list_ids("docs") == ["b"]
    again.upsert(docs("c"), [unit(0, 0, 1)])
    assert FaissVectorIndex(tmp_path, 3).list_ids() == ["a", "c"]
    names = sorted(p.name for p in tmp_path.glob("ns-*"))
    assert names == sorted(["ns-docs.2.faiss", "ns-docs.2.json", f"{_unique('')}.3.faiss", f"{_unique('')}.3.json"])
