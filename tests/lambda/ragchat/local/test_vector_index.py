import json

import numpy as np
import pytest

from ragchat.interfaces import Document
from ragchat.local.vector_index import FaissVectorIndex


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
