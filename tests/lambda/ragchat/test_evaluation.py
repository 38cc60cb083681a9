"""`ragchat eval`: the question file, the scores, and the command against a running service
and against Pinecone (the stand-in, with the hybrid index `ragchat ingest` creates)."""

import json

import pytest

from doubles import FAQ_DOCS
from ragchat.cli import main
from ragchat.evaluation.questions import EvalQuestion, QuestionFileError, load_questions
from ragchat.evaluation.report import Outcome, calibrate, format_report, report, scores
from ragchat.interfaces import Match, Turn

SPOT = "Which instances can I use with Managed Spot Training?"


def write(tmp_path, *records) -> str:
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_question_file_kinds_rows_ids_prior_turns_and_the_older_format(tmp_path):
    path = write(
        tmp_path,
        {"id": "a", "question": "spot?", "relevant_rows": [90]},
        {"id": "n", "question": "trainium?"},
        {"id": "f", "question": "cost?", "relevant_ids": ["docs/spot.md"],
         "prior_turns": [{"role": "user", "content": "spot?"}, {"role": "assistant", "content": "yes"}]},
        "",
        {"q": "regions?", "rows": [1]},
    )  # fmt: skip
    a, n, f, old = load_questions(path)
    assert (a.kind, a.relevant_rows) == ("answerable", (90,))
    assert n.kind == "no_answer" and not n.relevant_rows
    assert f.kind == "followup" and f.prior_turns == (Turn("user", "spot?"), Turn("assistant", "yes"))
    assert f.is_relevant(Match("x", 0.5, "", {"source": "docs/spot.md", "chunk": 3}))
    assert (old.question, old.relevant_rows, old.id) == ("regions?", (1,), "line-5")
    assert a.is_relevant(Match("x", 0.5, "", {"row": 90})) and not a.is_relevant(Match("x", 0.5, "", {"row": 9}))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", r"questions\.jsonl:1: not valid JSON"),
        ('{"question": "x", "kind": "answerable"}', "'relevant_rows' or 'relevant_ids' is needed"),
        ('{"question": "x", "relevant_rows": [1], "kind": "no_answer"}', "lists no relevant rows"),
        ('{"question": "x", "relevant_rows": ["1"]}', "field 'relevant_rows' must list row numbers"),
        ('{"question": "x", "relevant_rows": [1], "prior_turns": [{"role": "bot"}]}', "field 'prior_turns'"),
        ('{"question": " "}', "field 'question' is empty"),
        ('{"question": "x", "kind": "maybe"}', "field 'kind' must be one of"),
        # a misspelt key made an answerable question a no-answer one, silently
        ('{"id": "a", "question": "x", "relevant_row": [5]}', "unknown field 'relevant_row'"),
    ],
)
def test_a_bad_line_is_named_with_its_field(tmp_path, line, message):
    with pytest.raises(QuestionFileError, match=message):
        load_questions(write(tmp_path, line))


def test_a_file_is_named_as_its_chunk_ids_start_and_notes_are_allowed(tmp_path):
    """The README's `"relevant_ids": ["docs/security.md"]` never matched: ids are
    "docs/security.md#<digest>" and the source is "security.md"."""
    line = {"question": "rotate the key?", "relevant_ids": ["docs/security.md", "docs/café.md"], "_note": "x"}
    (q,) = load_questions(write(tmp_path, line))
    digest = "0" * 32
    assert q.is_relevant(Match(f"docs/security.md#{digest}", 0.7, "", {"source": "security.md", "chunk": 0}))
    assert q.is_relevant(Match(f"docs/caf%C3%A9.md#{digest}", 0.7, "", {"source": "café.md", "chunk": 0}))
    assert not q.is_relevant(Match(f"docs/security.md.bak#{digest}", 0.7, "", {"source": "security.md.bak"}))
    assert not q.is_relevant(Match(f"other/security.md#{digest}", 0.7, "", {"source": "security.md"}))


def match(row: int, score: float) -> Match:
    return Match(f"id-{row}", score, f"text {row}", {"row": row})


def test_scores_per_kind_and_the_threshold_they_support():
    q = lambda i, kind, rows=(): EvalQuestion(i, i, kind, tuple(rows))  # noqa: E731
    outcomes = [
        Outcome(q("a1", "answerable", [1]), [match(1, 0.9), match(2, 0.5)], [match(1, 0.9)]),
        Outcome(q("a2", "answerable", [2]), [match(1, 0.6), match(2, 0.5)], [match(1, 0.6)]),  # rank 2, not in prompt
        Outcome(q("a3", "answerable", [3]), [match(1, 0.3)], []),  # missed and cut
        Outcome(q("n1", "no_answer"), [match(4, 0.2)], []),
        Outcome(q("n2", "no_answer"), [match(4, 0.7)], [match(4, 0.7)]),
    ]
    got = scores(outcomes)
    assert got["answerable"] == {
        "n": 3, "rank1": 0.3333, "top5": 0.6667, "mrr": 0.5, "in_prompt": 0.3333, "no_sources": 0.3333
    }  # fmt: skip
    assert got["no_answer"] == {"n": 2, "no_sources": 0.5}
    # at most 3% of answerable may be cut: with three of them, none. 0.3 (the lowest answerable top
    # score) cuts none of them and the most no-answer questions (n1, at 0.2)
    assert calibrate(outcomes) == {"min_score": 0.3, "answerable_cut": 0.0, "no_answer_cut": 0.5,
                                   "max_answerable_cut": 0.03}  # fmt: skip
    text = format_report(report(outcomes, "somewhere"))
    assert "[a2] a2" in text and "got row 1 (0.600) text 1" in text and "[a1]" not in text
    assert "[n2] n2" in text and "sources given" in text


def test_eval_against_a_running_service_with_json_for_ci(live_server, tmp_path, capsys):
    path = write(
        tmp_path,
        {"id": "spot", "question": SPOT, "relevant_rows": [90]},
        {"id": "cost", "question": "Does it cut cost?", "relevant_rows": [84],
         "prior_turns": [{"role": "user", "content": "What is Managed Spot Training?"}]},
        {"id": "none", "question": "Can it run on quantum annealers?"},
    )  # fmt: skip
    assert main(["eval", str(path), "--url", live_server, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == live_server
    assert data["scores"]["answerable"]["rank1"] == 1.0 and data["scores"]["answerable"]["in_prompt"] == 1.0
    assert data["scores"]["followup"]["rank1"] == 1.0  # retrieved with its previous question
    assert data["scores"]["no_answer"] == {"n": 1, "no_sources": 1.0}  # under the no-answer threshold
    assert data["misses"] == []


def test_eval_question_file_errors_exit_1_naming_the_line(tmp_path, capsys):
    assert main(["eval", str(write(tmp_path, '{"question": 5}'))]) == 1
    assert "questions.jsonl:1: field 'question' must be a str" in capsys.readouterr().err


def test_eval_against_pinecone_queries_the_hybrid_index_as_the_lambda_does(tmp_path, monkeypatch, capsys):
    from ragchat.aws.pinecone_index import PineconeVectorIndex
    from ragchat.knowledge import document_sparse, document_vectors
    from ragchat.local.embedder import OnnxMiniLMEmbedder
    from ragchat.retrieval import Bm25Encoder
    from standins.pinecone_server import PineconeStandIn

    server = PineconeStandIn(api_key="pc-key")
    try:
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", server.url)
        monkeypatch.setenv("PINECONE_API_KEY", "pc-key")
        server.add_index("kb", metric="dotproduct", sparse=True)
        index = PineconeVectorIndex("kb", lambda refresh=False: "pc-key")
        encoder = Bm25Encoder.fit(d.text for d in FAQ_DOCS)
        embedder = OnnxMiniLMEmbedder()
        index.upsert(FAQ_DOCS, document_vectors(embedder, FAQ_DOCS), sparse=document_sparse(encoder, FAQ_DOCS))
        path = write(tmp_path, {"id": "spot", "question": SPOT, "relevant_rows": [90]})
        assert main(["eval", str(path), "--target", "pinecone", "--index", "kb", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["scores"]["answerable"]["rank1"] == 1.0 and data["scores"]["answerable"]["in_prompt"] == 1.0
        [query] = server.data_requests("/query")
        assert query.json()["topK"] == 16 and set(query.json()["sparseVector"]["values"]) == {0.01}
    finally:
        server.close()
