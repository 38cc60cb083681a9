"""The OpenAI-compatible chat API as plain functions: a validated request in, a
`chat.completion` or `chat.completion.chunk` objects out. The HTTP app only moves bytes.

What the service cannot do (several choices, tools, structured output) is refused in
OpenAI's own error shape, naming the parameter, rather than silently ignored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .engine import ChatRequest, ChatResult, Token
from .interfaces import GenerationParams, Turn
from .schemas import OpenAIChatBody

DEFAULT_MAX_TOKENS = 512


class OpenAIError(Exception):
    """A request OpenAI's API would answer with `{"error": {message, type, param, code}}`."""

    def __init__(self, status: int, message: str, param: str | None, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    """OpenAI's error object. `field` repeats `param`, as every other route of this
    service names the field there."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    if param is not None:
        body["field"] = param
    return {"error": body}


# What a parameter may say when the service cannot honour it: values that ask for nothing
# (clients send `tools: []` or `logprobs: false` by default). Anything else is refused.
NO_OP_VALUES: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
}


def refuse_unsupported(body: OpenAIChatBody) -> None:
    """Parameters whose meaning this service cannot honour: answering as if it did would
    mislead the caller (one choice for n=3, free text for a JSON schema, no tool calls)."""
    if body.n != 1:
        raise OpenAIError(
            400, f"n={body.n} is not supported: this service returns one choice", "n", "unsupported_value"
        )
    for name, no_op in NO_OP_VALUES.items():
        if getattr(body, name) not in no_op:
            message = f"Unsupported parameter: '{name}' is not supported by this service (plain text replies only)."
            raise OpenAIError(400, message, name, "unsupported_parameter")
    for m, message in enumerate(body.messages):
        for n, kind in message.non_text_parts():
            param = f"messages.{m}.content.{n}.type"
            text = f"Unsupported content part: {param} is {kind!r}; this service reads only 'text' parts."
            raise OpenAIError(400, text, param, "unsupported_value")


def chat_request(body: OpenAIChatBody, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> ChatRequest:
    """The engine's request: the last message is the question, earlier ones the history
    (system messages are not used: the service writes its own instructions). Without
    max_tokens, the model profile's default applies (`default_max_tokens`)."""
    refuse_unsupported(body)
    *earlier, last = body.messages
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    params = GenerationParams(
        temperature=body.temperature,
        top_k=body.top_k,
        max_new_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
        stop=stop,
        top_p=body.top_p,
        seed=body.seed,
    )
    history = [Turn(m.role, m.text) for m in earlier if m.role in ("user", "assistant") and m.text]
    return ChatRequest(inputs=last.text, params=params, history=history, moderated_release=body.stream)


@dataclass(frozen=True)
class CompletionMeta:
    """What every object of one completion repeats."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def finish_reason(result: ChatResult) -> str:
    return "content_filter" if result.blocked else result.finish_reason


def usage(result: ChatResult) -> dict[str, int]:
    prompt, completion = result.usage.prompt_tokens, result.usage.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(result: ChatResult, meta: CompletionMeta) -> dict[str, Any]:
    """A `chat.completion` object, plus this service's `sources` and `moderation`."""
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.outputs},
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage(result),
        "sources": [m.as_source() for m in result.sources],
        "moderation": result.moderation,
    }


def chunks(events: Iterator[Token | ChatResult], meta: CompletionMeta, include_usage: bool) -> Iterator[dict]:
    """`chat.completion.chunk` objects: the role, one per reply piece, the finish reason
    (with `sources`), and with `stream_options.include_usage` a last chunk with no choices
    and the usage; every other chunk then carries `"usage": null`, as OpenAI's do."""

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        data = {"id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model}
        data.update(choices=choices, **extra)
        if include_usage:
            data.setdefault("usage", None)
        return data

    def delta(content: dict[str, str], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish}], **extra)

    yield delta({"role": "assistant", "content": ""})
    for event in events:
        if isinstance(event, Token):
            yield delta({"content": event.text})
            continue
        if event.blocked:  # the reply so far is withdrawn: say so in the stream
            yield delta({"content": "\n\n" + event.outputs})
        yield delta({}, finish_reason(event), sources=[m.as_source() for m in event.sources])
        if include_usage:
            yield chunk([], usage=usage(event))


def model_object(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "ragchat"}


def model_list(model: str, created: int) -> dict[str, Any]:
    """`GET /v1/models`: the one model this service serves."""
    return {"object": "list", "data": [model_object(model, created)]}
