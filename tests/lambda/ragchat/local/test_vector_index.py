import json

import numpy as np
import pytest

from ragchat.interfaces import Document, SparseVector
from ragchat.local.vector_index import DENSE_CANDIDATES, FaissVectorIndex


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
    assert json.loads((tmp_path / "manifest.json").read_text())["namespaces"] == [""]


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
