"""A stand-in for the Amazon Bedrock runtime's Converse API (rest-json):
`POST /model/{modelId}/converse` answers JSON, `POST /model/{modelId}/converse-stream`
answers the AWS event stream (`application/vnd.amazon.eventstream`) with the events
Bedrock sends: messageStart, contentBlockDelta per piece of text, contentBlockStop,
messageStop, metadata (each with Bedrock's random `p` padding field), or an exception
event when the model fails mid-stream.

Requests are checked the way Bedrock checks them: a known model id, messages that start
with the user and alternate, no blank text, inference parameters in range. Errors are
answered as Bedrock does: the HTTP status of the error shape, `x-amzn-ErrorType`, and a
`{"message"}` body."""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from .base import Recorded, StandInServer, send_chunked, send_json
from .eventstream import encode_message

PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<kind>converse|converse-stream)$")
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
STATUS = {
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ValidationException": 400,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
}


class BedrockError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def tokens_of(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


@dataclass
class ConverseModel:
    """What the model 'writes': `reply` (or `reply_for(request)`), cut at a stop sequence
    (which Bedrock leaves out of the text) or at `maxTokens` (one word = one token here)."""

    reply: str = ""
    reply_for: Callable[[dict[str, Any]], str] | None = None
    stream_error_after: int | None = None  # pieces sent before an exception event
    stream_error: str = "modelStreamErrorException"  # or throttlingException, validationException, ...
    token_delay: float = 0.0
    # Streaming proof without clocks: after `hold_after` pieces the model waits for
    # `release` (set by whoever has seen those pieces arrive); `held_too_long` says nobody did.
    hold_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    held_too_long: bool = False
    HOLD_LIMIT_SECONDS = 20.0

    def pieces(self, request: dict[str, Any]) -> tuple[list[str], str]:
        text = self.reply_for(request) if self.reply_for else self.reply
        config = request.get("inferenceConfig", {})
        reason = "end_turn"
        for stop in config.get("stopSequences", []):
            if stop in text:
                text, reason = text[: text.index(stop)], "stop_sequence"
        tokens = tokens_of(text)
        limit = config.get("maxTokens")
        if limit is not None and len(tokens) > limit:
            tokens, reason = tokens[:limit], "max_tokens"
        return tokens, reason


def _padding() -> str:
    """Bedrock pads every stream event with a random `p` field (against size side channels)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(secrets.randbelow(20) + 1))


def event(name: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps({**payload, "p": _padding()}).encode()
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, body)


def exception_event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps(payload).encode())


def validate(request: dict[str, Any]) -> None:
    """The checks Bedrock makes before a model sees the request."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BedrockError("ValidationException", "A conversation must start with a user message.")
    if messages[0].get("role") != "user":
        raise BedrockError("ValidationException", "A conversation must start with a user message. Try again.")
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            raise BedrockError(
                "ValidationException",
                "A conversation must alternate between user and assistant roles. Make sure the conversation "
                "alternates between user and assistant roles and try again.",
            )
        if message.get("role") not in ("user", "assistant"):
            raise BedrockError("ValidationException", f"messages.{i}.role: must be user or assistant")
        for j, block in enumerate(message.get("content") or [None]):
            if not isinstance(block, dict) or not str(block.get("text", "")).strip():
                raise BedrockError(
                    "ValidationException",
                    f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. "
                    "Add text to the text field, and try again.",
                )
    for j, block in enumerate(request.get("system", [])):
        if not str(block.get("text", "")).strip():
            raise BedrockError("ValidationException", f"The text field in the system block at system.{j} is blank.")
    config = request.get("inferenceConfig", {})
    temperature = config.get("temperature", 0.5)
    if not 0 <= temperature <= 1:
        raise BedrockError("ValidationException", "inferenceConfig.temperature: must be between 0 and 1")
    if config.get("maxTokens", 1) < 1:
        raise BedrockError("ValidationException", "inferenceConfig.maxTokens: must be at least 1")


class BedrockRuntimeStandIn(StandInServer):
    def __init__(self) -> None:
        self.models: dict[str, ConverseModel] = {}
        self.failures: dict[str, deque[tuple[str, str]]] = defaultdict(deque)
        super().__init__()

    def serve(self, model_id: str, model: ConverseModel) -> None:
        self.models[model_id] = model

    def fail(self, model_id: str, code: str, message: str, times: int = 1) -> None:
        """The next `times` calls to `model_id` answer this error instead."""
        self.failures[model_id].extend((code, message) for _ in range(times))

    def calls(self, model_id: str) -> list[Recorded]:
        return [r for r in self.requests if r.extra.get("model") == model_id]

    def reset(self) -> None:
        super().reset()
        self.models.clear()
        self.failures.clear()

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        match = PATH.match(recorded.path)
        if recorded.method != "POST" or not match:
            send_json(handler, 404, {"message": "unknown path"}, {"x-amzn-ErrorType": "UnknownOperationException:"})
            return
        model_id = unquote(match["model"])
        streaming = match["kind"] == "converse-stream"
        recorded.extra.update(model=model_id, streaming=streaming)
        try:
            if self.failures[model_id]:
                raise BedrockError(*self.failures[model_id].popleft())
            model = self.models.get(model_id)
            if model is None:
                raise BedrockError("ValidationException", "The provided model identifier is invalid.")
            request = recorded.json()
            validate(request)
            tokens, reason = model.pieces(request)
        except BedrockError as exc:
            headers = {"x-amzn-ErrorType": exc.code + ERROR_TYPE_SUFFIX}
            send_json(handler, STATUS[exc.code], {"message": exc.message}, headers)
            return
        usage = {"inputTokens": len(recorded.body) // 4, "outputTokens": len(tokens)}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        if not streaming:
            send_json(
                handler,
                200,
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": "".join(tokens)}]}},
                    "stopReason": reason,
                    "usage": usage,
                    "metrics": {"latencyMs": 12},
                },
            )
            return
        send_chunked(handler, "application/vnd.amazon.eventstream", self._events(model, tokens, reason, usage))

    @staticmethod
    def _events(model: ConverseModel, tokens: list[str], reason: str, usage: dict[str, int]) -> Iterator[bytes]:
        yield event("messageStart", {"role": "assistant"})
        for i, token in enumerate(tokens):
            if model.stream_error_after is not None and i == model.stream_error_after:
                message = "The system encountered an unexpected error during processing. Try your request again."
                yield exception_event(model.stream_error, {"message": message, "originalStatusCode": 500})
                return
            if model.token_delay and i:
                time.sleep(model.token_delay)
            if i == model.hold_after and not model.release.wait(model.HOLD_LIMIT_SECONDS):
                model.held_too_long = True
            yield event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": token}})
        yield event("contentBlockStop", {"contentBlockIndex": 0})
        yield event("messageStop", {"stopReason": reason})
        yield event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}})
