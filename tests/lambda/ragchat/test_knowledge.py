from pathlib import Path

from doubles import BagOfWordsEmbedder
from ragchat.interfaces import Document
from ragchat.knowledge import document_vectors, faq_documents, stable_id

FAQ = Path(__file__).resolve().parents[3] / "data" / "Amazon_SageMaker_FAQs.csv"


def test_faq_parses_all_rows_with_bom_and_crlf():
    docs = faq_documents(FAQ)
    assert len(docs) == 154
    assert docs[0].text.startswith("What is Amazon SageMaker?\n")  # no BOM
    assert all("\r" not in d.text for d in docs)
    row = docs[90]
    assert row.metadata == {
        "source": "Amazon_SageMaker_FAQs.csv",
        "row": 90,
        "title": "Which instances can I use with Managed Spot Training?",
    }
    assert "all instances supported in Amazon SageMaker" in row.text
    assert len({d.id for d in docs}) == 154


def test_stable_id_depends_on_source_position_and_content():
    assert stable_id("a.csv", 1, "t") == stable_id("a.csv", 1, "t")
    assert (
        len(
            {
                stable_id("a.csv", 1, "t"),
                stable_id("b.csv", 1, "t"),
                stable_id("a.csv", 2, "t"),
                stable_id("a.csv", 1, "u"),
            }
        )
        == 4
    )


def test_documents_are_indexed_by_their_whole_text_title_or_not():
    """The question-vector boost is gone: it ranked outside questions worse (README table)."""
    embedder = BagOfWordsEmbedder()
    titled = Document("t", "alpha beta", {"title": "gamma"})
    (vector,) = document_vectors(embedder, [titled])
    assert vector == embedder.embed(["alpha beta"])[0]
