"""Request bodies of the HTTP API, validated strictly: wrong types are not coerced and
unknown fields are refused, so a typo never silently falls back to a default."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_INPUT_CHARS = 8000
MAX_STOP_SEQUENCES = 4  # OpenAI's documented limit
MAX_STOP_CHARS = 64
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"

NonBlank = Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


class ChatParameters(_Strict):
    temperature: float = Field(0.6, ge=0, le=2)
    top_k: int = Field(40, ge=0, le=1000)
    max_new_tokens: int = Field(512, ge=1, le=2048)
    session_id: str | None = Field(None, pattern=SESSION_ID_PATTERN)
    no_retrieval: bool = False


class ChatBody(_Strict):
    """The original contract: {"inputs": str, "parameters": {...}}, plus "stream"."""

    inputs: NonBlank
    parameters: ChatParameters = ChatParameters()
    stream: bool = False

    _inputs_not_blank = field_validator("inputs")(_not_blank)


class RetrieveBody(_Strict):
    query: NonBlank
    top_k: int = Field(5, ge=1, le=100)

    _query_not_blank = field_validator("query")(_not_blank)


class OpenAIMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]


class OpenAIChatBody(_Strict):
    """The subset of OpenAI's chat-completions request this service honours. Fields the
    official clients send that do not change the answer (`model`, `user`, `n`=1,
    `stream_options`) are accepted."""

    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    model: str | None = None
    temperature: float = Field(0.6, ge=0, le=2)
    top_k: int = Field(40, ge=0, le=1000)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    stop: str | list[str] | None = None
    n: Literal[1] = 1
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _bounded_stop(cls, stop: str | list[str] | None) -> str | list[str] | None:
        """Every stop sequence goes to the model (and the local model prepares each one
        against its whole vocabulary), so their number and length are bounded."""
        sequences = [stop] if isinstance(stop, str) else stop or []
        if len(sequences) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(sequences)}")
        if any(len(s) > MAX_STOP_CHARS for s in sequences):
            raise ValueError(f"a stop sequence may be at most {MAX_STOP_CHARS} characters long")
        return stop

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[OpenAIMessage]) -> list[OpenAIMessage]:
        if messages[-1].role != "user" or not messages[-1].content.strip():
            raise ValueError("the last message must be a non-empty user message")
        return messages
