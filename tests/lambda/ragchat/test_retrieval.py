from doubles import BagOfWordsEmbedder, MemoryIndex
from ragchat.interfaces import Document, SparseVector, Turn
from ragchat.retrieval import (
    Bm25Encoder,
    HybridRetriever,
    above_threshold,
    encode_query,
    retrieval_query,
    term_index,
    terms,
)

DOCS = [
    Document("spot", "Managed Spot Training uses spare EC2 capacity and saves up to 90% of training costs."),
    Document("neo", "SageMaker Neo compiles models for edge devices."),
    Document("price", "Pricing: you pay for instances by the second, and for storage."),
]


def test_terms_are_lowercased_stemmed_words_without_stop_words():
    assert terms("How do I train Models on the Spot instances?") == ["train", "model", "spot", "instance"]
    assert terms("Training savings") == terms("train saving")


def test_bm25_weights_rare_words_higher_and_live_on_the_document_side():
    texts = ["spot spot training", "training costs", "training pricing"]
    encoder = Bm25Encoder.fit(texts)
    weights = dict(zip(*encoder.encode_documents(texts)[0].__dict__.values(), strict=True))
    assert weights[term_index("spot")] > weights[term_index("train")] > 0  # "spot" is in 1 document, "train" in all
    # a query's sparse vector is flat: its dot product with a document is weight x that document's BM25 score
    query = encode_query("spot training", 0.5)
    assert set(query.values) == {0.5} and len(query.indices) == 2
    document = encoder.encode_document("spot spot training")
    bm25 = encoder.encode_document("spot spot training").dot(encode_query("spot training", 1.0))
    assert abs(query.dot(document) - 0.5 * bm25) < 1e-12


def test_a_followup_is_looked_up_with_the_previous_user_turn_and_a_first_turn_as_asked():
    history = [
        Turn("user", "What is Neo?"),
        Turn("assistant", "A compiler."),
        Turn("user", "How does Managed Spot Training work?"),
        Turn("assistant", "It uses spare capacity."),
    ]
    assert retrieval_query("Does it save money?", []) == "Does it save money?"
    assert (
        retrieval_query("Does it save money?", history) == "Does it save money?\nHow does Managed Spot Training work?"
    )
    assert retrieval_query("Does it save money?", history, followup_turns=0) == "Does it save money?"


def index_with_docs() -> tuple[BagOfWordsEmbedder, MemoryIndex]:
    embedder, index = BagOfWordsEmbedder(), MemoryIndex()
    texts = [d.text for d in DOCS]
    index.upsert(DOCS, embedder.embed(texts), sparse=Bm25Encoder.fit(texts).encode_documents(texts))
    return embedder, index


def test_retriever_sends_both_vectors_and_finds_the_followups_document():
    embedder, index = index_with_docs()
    history = [Turn("user", "How does Managed Spot Training work?"), Turn("assistant", "Spare capacity.")]
    top = HybridRetriever(embedder, index, 0.01).search(retrieval_query("Does it save money?", history), 2)[0]
    assert top.id == "spot"
    assert embedder.calls[-1] == ["Does it save money?\nHow does Managed Spot Training work?"]
    sparse = index.sparse_queries[-1]
    assert term_index("spot") in sparse.indices and set(sparse.values) == {0.01}


def test_dense_only_ranking_sends_no_sparse_vector():
    embedder, index = index_with_docs()
    HybridRetriever(embedder, index, lexical_weight=0.0).search("spot training", 3)
    assert index.sparse_queries[-1] is None


def test_nothing_above_the_no_answer_threshold_is_no_match():
    embedder, index = index_with_docs()
    retriever = HybridRetriever(embedder, index)
    ranked = retriever.search("weather in Paris tomorrow", 3)
    assert ranked and above_threshold(ranked, 0.3) == []  # ranked, but all under the threshold
    found = above_threshold(retriever.search("Managed Spot Training capacity", 3), 0.3)
    assert found[0].id == "spot" and len(found) == 3  # weaker matches behind a good one stay


def test_sparse_dot_product():
    a = SparseVector((1, 5, 9), (1.0, 2.0, 3.0))
    b = SparseVector((5, 9, 12), (10.0, 1.0, 7.0))
    assert a.dot(b) == 23.0 and b.dot(a) == 23.0 and a.dot(SparseVector()) == 0.0
