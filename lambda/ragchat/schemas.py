"""Request bodies of the HTTP API, validated strictly: wrong types are not coerced and
unknown fields are refused, so a typo never silently falls back to a default."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_INPUT_CHARS = 8000
MAX_STOP_SEQUENCES = 4  # OpenAI's documented limit
MAX_STOP_CHARS = 64
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"

NonBlank = Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _NullIsDefault(_Strict):
    """`null` for an optional parameter means "the default", as in OpenAI's API: client
    wrappers pass `temperature=None` through. Only the fields named in NULL_IS_DEFAULT."""

    NULL_IS_DEFAULT: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None and k in cls.NULL_IS_DEFAULT)}
        return data


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


class ChatParameters(_NullIsDefault):
    NULL_IS_DEFAULT = ("temperature", "top_k", "no_retrieval")
    temperature: float = Field(0.6, ge=0, le=2)
    top_k: int = Field(40, ge=0, le=1000)
    # None: the model profile's default (short for the small local model)
    max_new_tokens: int | None = Field(None, ge=1, le=2048)
    session_id: str | None = Field(None, pattern=SESSION_ID_PATTERN)
    no_retrieval: bool = False


class ChatBody(_NullIsDefault):
    """The original contract: {"inputs": str, "parameters": {...}}, plus "stream"."""

    NULL_IS_DEFAULT = ("parameters", "stream")

    inputs: NonBlank
    parameters: ChatParameters = ChatParameters()
    stream: bool = False

    _inputs_not_blank = field_validator("inputs")(_not_blank)


class HistoryTurn(_Strict):
    role: Literal["user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]


class RetrieveBody(_Strict):
    """A turn to look up as the chat would: `history` holds the conversation before it."""

    query: NonBlank
    top_k: int | None = Field(None, ge=1, le=100)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=200)
    max_new_tokens: int | None = Field(None, ge=1, le=2048)  # None: the model profile's default

    _query_not_blank = field_validator("query")(_not_blank)


MAX_CONTENT_PARTS = 256  # bounds the parts (and a 422's list of their errors) a 256 KiB body can hold


class ContentPart(BaseModel):
    """One part of OpenAI's multi-part `content`. Text parts are read; other kinds
    (`image_url`, `input_audio`, `file`) pass here so that the route can refuse them in
    OpenAI's error shape, naming the part."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str = Field(max_length=64)
    text: str | None = None  # bounded with the message's other parts

    @model_validator(mode="after")
    def _text_has_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs a `text` string")
        return self


class OpenAIMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]  # developer: the newer name of system
    name: str | None = Field(None, max_length=256)  # accepted, not used
    # what the SDK's own assistant message carries when a client echoes it back (`model_dump()`):
    # accepted and not used (this service makes no tool calls, refusals or audio)
    refusal: str | None = None
    tool_calls: list[Any] | None = None
    function_call: dict[str, Any] | None = None
    annotations: list[Any] | None = None
    audio: dict[str, Any] | None = None
    # a string is one text part: one shape to validate, and errors name `messages.N.content...`
    # without the labels pydantic gives the members of a union
    content: list[ContentPart] = Field(max_length=MAX_CONTENT_PARTS)

    @field_validator("content", mode="before")
    @classmethod
    def _string_is_one_text_part(cls, content: Any) -> Any:
        if content is None:  # an assistant turn that only called tools: no text
            return []
        return [{"type": "text", "text": content}] if isinstance(content, str) else content

    @field_validator("content")
    @classmethod
    def _bounded_text(cls, content: list[ContentPart]) -> list[ContentPart]:
        if len(text_of(content)) > MAX_INPUT_CHARS:
            raise ValueError(f"String should have at most {MAX_INPUT_CHARS} characters (the text parts together)")
        return content

    @property
    def text(self) -> str:
        """The message as the engine reads it: its text parts joined by newlines."""
        return text_of(self.content)

    def non_text_parts(self) -> list[tuple[int, str]]:
        """(position, type) of every part that is not text."""
        return [(n, part.type) for n, part in enumerate(self.content) if part.type != "text"]


def text_of(parts: list[ContentPart]) -> str:
    return "\n".join(part.text or "" for part in parts if part.type == "text")


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool = False  # accepted; nothing here needs padding
    continuous_usage_stats: bool = False  # vLLM's; accepted, usage comes once at the end


class OpenAIChatBody(_NullIsDefault):
    """OpenAI's chat-completions request. Honoured: `messages`, `temperature`, `top_p`,
    `max_tokens`/`max_completion_tokens`, `stop`, `stream`, `stream_options`, `seed` (by
    the backends that can). Accepted and ignored: `model` (one model is served),
    `presence_penalty` and `frequency_penalty` (no backend here has OpenAI's penalties),
    `user`, `store`, `metadata`, `parallel_tool_calls`, and the no-op values of `logprobs`
    (false), `logit_bias` ({}), `tools` ([]), `tool_choice` ("none") and `response_format`
    ({"type": "text"}). Refused by the route, naming the field: `n` > 1, tools, log
    probabilities, logit biases, structured output. Unknown fields are refused here;
    `null` means the default."""

    NULL_IS_DEFAULT = ("temperature", "top_k", "stream", "n")

    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    model: str | None = Field(None, max_length=256)
    temperature: float = Field(0.6, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int = Field(40, ge=0, le=1000)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = Field(None, max_length=256)
    n: int = Field(1, ge=1, le=128)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str, float] | None = Field(None, max_length=300)
    parallel_tool_calls: bool | None = None
    store: bool | None = None  # nothing of this route is stored either way
    metadata: dict[str, str] | None = Field(None, max_length=16)

    @field_validator("stop")
    @classmethod
    def _bounded_stop(cls, stop: str | list[str] | None) -> str | list[str] | None:
        """Every stop sequence goes to the model (and the local model prepares each one
        against its whole vocabulary), so their number and length are bounded."""
        sequences = [stop] if isinstance(stop, str) else stop or []
        sequences = [s for s in sequences if s]  # an empty stop string stops nothing (it cut replies to 1 character)
        if len(sequences) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(sequences)}")
        if any(len(s) > MAX_STOP_CHARS for s in sequences):
            raise ValueError(f"a stop sequence may be at most {MAX_STOP_CHARS} characters long")
        return sequences or None

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[OpenAIMessage]) -> list[OpenAIMessage]:
        last = messages[-1]
        if last.non_text_parts():
            return messages  # refused by the route, naming the part
        if last.role != "user" or not last.text.strip():
            raise ValueError("the last message must be a non-empty user message")
        return messages
