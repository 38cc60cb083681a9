"""The chat service's side of the Wikipedia retrieval contract (`ragchat.wikipedia`): the
README's response becomes the README's source, and a failing endpoint costs the context,
never the answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import make_engine
from ragchat.engine import RETRIEVAL_WARNING, ChatRequest
from ragchat.errors import RetrievalUnavailable, UpstreamModelError, UpstreamThrottled
from ragchat.wikipedia import WikipediaRetrieval

QUESTION = "Who was the last man on the moon?"


class ReplayRuntime:
    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.sent: list[tuple[str, Any, str]] = []

    def invoke(self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None) -> Any:
        self.sent.append((endpoint, payload, step))
        if self.error:
            raise self.error
        return self.answer


def test_the_readme_response_becomes_the_readme_source(readme_examples):
    runtime = ReplayRuntime(json.loads(readme_examples["wikipedia-response"]))
    (match,) = WikipediaRetrieval(runtime, "wiki-endpoint").search(QUESTION, 5)

    assert match.as_source() == json.loads(readme_examples["wikipedia-source"])
    assert runtime.sent == [("wiki-endpoint", json.loads(readme_examples["wikipedia-request"]), "retrieval")]


def test_top_k_is_kept_within_the_endpoint_limit():
    assert WikipediaRetrieval(None, "e").request(QUESTION, 100)["parameters"]["k"] == 50


@pytest.mark.parametrize(
    "runtime",
    [
        ReplayRuntime(error=UpstreamThrottled("slow down", step="retrieval")),
        ReplayRuntime(error=UpstreamModelError("400 parameters.k", step="retrieval")),
        ReplayRuntime(answer={"unexpected": []}),
        ReplayRuntime(answer={"results": [{"id": "wikipedia:1"}]}),
    ],
)
def test_failures_are_retrieval_unavailable(runtime):
    with pytest.raises(RetrievalUnavailable, match="Wikipedia retrieval"):
        WikipediaRetrieval(runtime, "wiki").search(QUESTION, 5)


def test_the_engine_answers_without_context_when_the_endpoint_fails(caplog):
    retriever = WikipediaRetrieval(ReplayRuntime(error=UpstreamModelError("down", step="retrieval")), "wiki")
    engine = make_engine(retriever=retriever)

    result = engine.chat(ChatRequest(QUESTION))

    assert result.sources == [] and result.outputs
    # the caller is told that retrieval failed; the cause is for the operator's log
    assert result.warnings == [RETRIEVAL_WARNING]
    assert any("Wikipedia retrieval failed" in r.getMessage() for r in caplog.records)
