"""Retrieval from Wikipedia through the retrieval endpoint (`model_code/wikipedia_retrieval`):
the endpoint embeds the question itself (contriever), so no embedding call comes first.

The same adapter serves the Lambda (a SageMaker runtime) and the local mode (the handler
in-process, `local/wikipedia.py`): both receive the endpoint's JSON contract."""

from __future__ import annotations

from typing import Any, Protocol

from .errors import ChatServiceError, RetrievalUnavailable
from .interfaces import Match

MAX_K = 50  # the endpoint's limit
# the endpoint refuses longer inputs; its encoder reads 512 tokens (about 2,000 characters) anyway,
# and a chat question (8,000 characters) or a follow-up's query (two turns) can be longer
MAX_QUERY_CHARS = 4096


class JsonRuntime(Protocol):
    def invoke(self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None) -> Any: ...


class WikipediaRetrieval:
    """A `Retriever`: one request per question; each result is a passage of neighbouring
    snippets with its article title and the snippet rows it spans."""

    def __init__(self, runtime: JsonRuntime, endpoint: str, window: int = 5, threshold: float = 0.5) -> None:
        self.runtime, self.endpoint = runtime, endpoint
        self.window, self.threshold = window, threshold

    def request(self, query: str, top_k: int) -> dict[str, Any]:
        parameters = {"k": max(1, min(top_k, MAX_K)), "window": self.window, "threshold": self.threshold}
        return {"inputs": query[:MAX_QUERY_CHARS], "parameters": parameters}

    def search(self, query: str, top_k: int) -> list[Match]:
        try:
            answer = self.runtime.invoke(self.endpoint, self.request(query, top_k), step="retrieval")
            return [to_match(result) for result in answer["results"]]
        except ChatServiceError as exc:
            raise RetrievalUnavailable(f"Wikipedia retrieval failed: {exc}", step="retrieval") from None
        except (KeyError, TypeError, ValueError) as exc:
            message = f"Wikipedia retrieval answered an unexpected body ({type(exc).__name__}: {exc})"
            raise RetrievalUnavailable(message, step="retrieval") from None


def to_match(result: dict[str, Any]) -> Match:
    metadata = {
        "source": "wikipedia",
        "title": result["title"],
        "row": int(result["row"]),
        "snippets": [int(r) for r in result["snippets"]],
    }
    return Match(str(result["id"]), float(result["score"]), str(result["text"]), metadata)
