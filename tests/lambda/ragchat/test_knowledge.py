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


def test_titled_documents_blend_title_and_text_vectors():
    embedder = BagOfWordsEmbedder()
    plain = Document("p", "alpha beta")
    titled = Document("t", "alpha beta", {"title": "gamma"})
    v_plain, v_titled = document_vectors(embedder, [plain, titled])
    assert v_plain == embedder.embed(["alpha beta"])[0]
    assert abs(sum(x * x for x in v_titled) - 1) < 1e-9
    title_vec = embedder.embed(["gamma"])[0]
    assert sum(a * b for a, b in zip(v_titled, title_vec, strict=True)) > 0.5
