"""A stand-in for the SageMaker runtime (`/endpoints/{name}/invocations` and
`/endpoints/{name}/invocations-response-stream`) with containers that answer like the
LMI (text and chat completions schemas), Hugging Face (TGI and feature-extraction) and
JumpStart containers do, and one that runs this product's Wikipedia retrieval handler itself.

Streamed answers use the real event-stream framing, and each line of the container's
output is split across two PayloadParts, as the runtime is allowed to do."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from .base import Recorded, StandInServer, send_chunked, send_json
from .eventstream import model_stream_error, payload_part

PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<kind>invocations|invocations-response-stream)$")


class ContainerError(Exception):
    """An answer the container gives instead of a result (the runtime wraps it as ModelError)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def tokens_of(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


@dataclass
class TextModel:
    """What the 'model' writes: the reply, then (unless a stop sequence is honoured) a
    run-on into a new turn, as chat models do."""

    reply: str
    run_on: str = "\n<human>: what else?\n<bot>: more text"

    def generate(self, stop: Sequence[str], max_new_tokens: int = 512) -> list[str]:
        tokens = tokens_of(self.reply + self.run_on)
        out: list[str] = []
        for token in tokens[:max_new_tokens]:
            out.append(token)
            if any(s and s in "".join(out) for s in stop):
                break  # like LMI and TGI: the stop sequence itself is still in the output
        return out

    def details(self, tokens: list[str], parameters: dict[str, Any]) -> dict[str, Any]:
        """The `details` of the last streamed line, as LMI and TGI send them."""
        text, stop = "".join(tokens), parameters.get("stop_sequences") or parameters.get("stop") or []
        if any(s and s in text for s in stop):
            reason = "stop_sequence"
        else:
            reason = "length" if len(tokens) >= parameters.get("max_new_tokens", 512) else "eos_token"
        return {"finish_reason": reason, "generated_tokens": len(tokens), "inputs": None}


class LmiContainer:
    """DJL Serving LMI with rolling batch: `{"inputs", "parameters", "stream"}`."""

    def __init__(self, reply: str, stream_error_after: int | None = None, token_delay: float = 0.0) -> None:
        self.model = TextModel(reply)
        self.stream_error_after = stream_error_after
        self.token_delay = token_delay  # seconds between streamed tokens, as a real model takes

    def _tokens(self, body: dict[str, Any]) -> list[str]:
        if not isinstance(body.get("inputs"), str):
            raise ContainerError(400, "inputs must be a string")
        parameters = body.get("parameters", {})
        return self.model.generate(parameters.get("stop_sequences", []), parameters.get("max_new_tokens", 512))

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        return {"generated_text": "".join(self._tokens(body))}

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        tokens = self._tokens(body)
        lines = []
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            event = {
                "token": {"id": 100 + i, "text": token, "log_prob": -0.25, "special_token": False},
                "generated_text": "".join(tokens) if last else None,
                "details": self.model.details(tokens, body.get("parameters", {})) if last else None,
            }
            lines.append(json.dumps(event).encode() + b"\n")
        return lines


class TgiContainer:
    """Hugging Face LLM (TGI): buffered `[{"generated_text"}]`, streamed `data:{...}` events."""

    def __init__(self, reply: str) -> None:
        self.model = TextModel(reply, run_on=" </s> trailing")

    def _tokens(self, body: dict[str, Any]) -> list[str]:
        if not isinstance(body.get("inputs"), str):
            raise ContainerError(422, "Input validation error: `inputs` must be a string")
        return self.model.generate(body.get("parameters", {}).get("stop", []))

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        return [{"generated_text": "".join(self._tokens(body))}]

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        tokens = self._tokens(body)
        events = []
        for i, token in enumerate(tokens):
            event = {
                "token": {"id": i, "text": token, "logprob": -0.3, "special": token.strip() == "</s>"},
                "generated_text": "".join(tokens) if i == len(tokens) - 1 else None,
                "details": None,
            }
            events.append(b"data:" + json.dumps(event).encode() + b"\n\n")
        return events


class JumpStartLlamaContainer:
    """JumpStart `meta-textgeneration-llama-2-7b-f`: dialogs in, `[{"generation"}]` out,
    refused without `accept_eula=true` in the custom attributes."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        if "accept_eula=true" not in headers.get("x-amzn-sagemaker-custom-attributes", ""):
            raise ContainerError(
                400,
                "Need to pass custom_attributes='accept_eula=true' as part of header. This means you have read "
                "and accept the end-user-license-agreement (EULA) of the model.",
            )
        dialogs = body.get("inputs")
        if not (isinstance(dialogs, list) and dialogs and all(isinstance(d, list) for d in dialogs)):
            raise ContainerError(400, "inputs must be a list of dialogs")
        if any(m.get("role") not in ("system", "user", "assistant") for d in dialogs for m in d):
            raise ContainerError(400, "roles must be system, user or assistant")
        return [{"generation": {"role": "assistant", "content": self.reply}} for _ in dialogs]

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        raise ContainerError(400, "this container does not stream dialogs")


class LmiChatContainer:
    """LMI's chat completions schema: a body with `messages` is templated by the container;
    buffered `chat.completion`, streamed JSON lines of `chat.completion.chunk`. The model
    stops at its end-of-turn token, which never appears in the text."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def _tokens(self, body: dict[str, Any]) -> list[str]:
        messages = body.get("messages")
        if not (isinstance(messages, list) and messages):
            raise ContainerError(400, "messages must be a non-empty list")
        if any(not isinstance(m, dict) or "role" not in m or "content" not in m for m in messages):
            raise ContainerError(
                400, "When passing chat dicts as input, each dict must have a 'role' and 'content' key."
            )
        if "inputs" in body or "parameters" in body:
            raise ContainerError(400, "a chat completions request has no inputs or parameters")
        tokens = tokens_of(self.reply)
        return tokens[: body.get("max_tokens") or len(tokens)]

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        tokens = self._tokens(body)
        finish = "eos_token" if len(tokens) == len(tokens_of(self.reply)) else "length"
        message = {"role": "assistant", "content": "".join(tokens)}
        usage = {"prompt_tokens": 71, "completion_tokens": len(tokens), "total_tokens": 71 + len(tokens)}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return {
            "id": "chatcmpl-0",
            "object": "chat.completion",
            "created": 1763803800,
            "choices": [choice],
            "usage": usage,
        }

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        tokens = self._tokens(body)
        lines = []
        for i, token in enumerate(tokens):
            delta = {"content": token} | ({"role": "assistant"} if i == 0 else {})
            finish = (
                ("eos_token" if len(tokens) == len(tokens_of(self.reply)) else "length")
                if i == len(tokens) - 1
                else None
            )
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            event = {"id": "chatcmpl-0", "object": "chat.completion.chunk", "created": 1763803800, "choices": [choice]}
            lines.append(json.dumps(event).encode() + b"\n")
        return lines


class ModerationContainer:
    """GPT-JT-Moderation-6B on LMI: labels the text after the last `Input:` of the prompt
    with `classify` (the test decides what the 'model' thinks)."""

    def __init__(self, classify: Callable[[str], str], failed_generation: dict[str, Any] | None = None) -> None:
        self.classify = classify
        self.failed_generation = failed_generation  # a 200 body that reports a failed generation

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        if self.failed_generation is not None:
            return self.failed_generation
        prompt = body["inputs"]
        text = prompt.rsplit("Input: ", 1)[1].rsplit("\nOutput:", 1)[0]
        return {"generated_text": " " + self.classify(text)}

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        raise ContainerError(400, "moderation is called buffered")


class EmbeddingContainer:
    """`pooled`: this product's inference script (`{"vectors": [...]}`).
    `token`: the stock feature-extraction container: token vectors per text, padded to the
    longest text of the request with the pad token's vector, no mask."""

    def __init__(self, encode: Callable[[list[str]], list[Any]], kind: str = "pooled") -> None:
        self.encode, self.kind = encode, kind

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        inputs = body["inputs"]
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if self.kind == "pooled":
            return {"vectors": self.encode(texts)}
        per_text = [self.encode([t])[0] for t in texts]  # token-level rows per text
        longest = max(len(rows) for rows in per_text)
        pad = [0.5] * len(per_text[0][0])
        return [rows + [pad] * (longest - len(rows)) for rows in per_text]

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        raise ContainerError(400, "embeddings are not streamed")


class WikipediaRetrievalContainer:
    """The retrieval image's handler (`model_code/wikipedia_retrieval/handler.py`) on a
    folder in its format: the answer is the real handler's, a bad request its 400."""

    def __init__(self, handler: Any, retriever: Any) -> None:
        self.handler, self.retriever = handler, retriever

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        try:
            return self.handler.handle(self.retriever, json.dumps(body))
        except self.handler.BadRequest as exc:
            raise ContainerError(400, json.dumps({"error": {"field": exc.field, "message": exc.message}})) from None

    def stream(self, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
        raise ContainerError(400, "retrieval is not streamed")


@dataclass
class Failure:
    status: int
    code: str
    message: str
    retry_after: int | None = None


class SageMakerRuntimeStandIn(StandInServer):
    def __init__(self) -> None:
        self.containers: dict[str, Any] = {}
        self.failures: dict[str, deque[Failure]] = defaultdict(deque)
        self.delays: dict[str, float] = {}
        super().__init__()

    def deploy(self, endpoint: str, container: Any) -> None:
        self.containers[endpoint] = container

    def fail(self, endpoint: str, status: int, code: str, message: str = "", times: int = 1, **kw: Any) -> None:
        self.failures[endpoint].extend(Failure(status, code, message or code, **kw) for _ in range(times))

    def calls(self, endpoint: str) -> list[Recorded]:
        return [r for r in self.requests if r.extra.get("endpoint") == endpoint]

    def reset(self) -> None:
        super().reset()
        self.failures.clear()
        self.delays.clear()

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        match = PATH.match(recorded.path)
        if recorded.method != "POST" or not match:
            send_json(handler, 404, {"message": "unknown path"}, {"x-amzn-ErrorType": "UnknownOperationException"})
            return
        endpoint = unquote(match["name"])
        recorded.extra.update(endpoint=endpoint, streaming=match["kind"] != "invocations")
        if endpoint in self.delays:
            time.sleep(self.delays[endpoint])
        container = self.containers.get(endpoint)
        if container is None:
            message = f"Endpoint {endpoint} of account 123456789012 not found."
            send_json(handler, 400, {"message": message}, {"x-amzn-ErrorType": "ValidationError:"})
            return
        if self.failures[endpoint]:
            failure = self.failures[endpoint].popleft()
            headers = {"x-amzn-ErrorType": f"{failure.code}:"}
            if failure.retry_after:
                headers["Retry-After"] = str(failure.retry_after)
            send_json(handler, failure.status, {"message": failure.message}, headers)
            return
        body = json.loads(recorded.body)
        try:
            if recorded.extra["streaming"]:
                chunks = container.stream(body, recorded.headers)
            else:
                send_json(handler, 200, container.invoke(body, recorded.headers))
                return
        except ContainerError as exc:
            message = f'Received client error ({exc.status}) from primary with message "{exc.message}".'
            payload = {"OriginalStatusCode": exc.status, "OriginalMessage": exc.message, "message": message}
            send_json(handler, 424, payload, {"x-amzn-ErrorType": "ModelError:"})
            return
        send_chunked(handler, "application/vnd.amazon.eventstream", self._frames(container, chunks))

    @staticmethod
    def _frames(container: Any, chunks: list[bytes]) -> Any:
        error_after = getattr(container, "stream_error_after", None)
        delay = getattr(container, "token_delay", 0.0)
        for i, chunk in enumerate(chunks):
            if delay and i:
                time.sleep(delay)
            if error_after is not None and i == error_after:
                yield model_stream_error("CUDA out of memory")
                return
            middle = max(1, len(chunk) // 2)
            yield payload_part(chunk[:middle])
            yield payload_part(chunk[middle:])
