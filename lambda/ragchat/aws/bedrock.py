"""Text generation on Amazon Bedrock through the Converse API: no endpoint to run, any
Converse-capable model or cross-region inference profile, one request shape for all.

The engine's chat messages become Converse's shape: the system message (instructions and
retrieved context) goes in the `system` block; history and question become `messages`
that start with the user and alternate, as Converse requires."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from ..errors import UpstreamModelError
from ..interfaces import GenerationParams, RenderedPrompt
from .bedrock_errors import map_bedrock_error
from .sagemaker import StartRetry

STEP = "generation"
CHARS_PER_TOKEN = 3.0  # conservative for English BPE: the Lambda has no tokenizer
MAX_TEMPERATURE = 1.0  # Converse's range is 0..1; the chat API allows up to 2
FAILURES = (ClientError, ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError)


def converse_messages(messages: Sequence[dict[str, str]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) for Converse. System messages go to the system blocks;
    turns before the first user message are dropped (a conversation must start with the
    user); consecutive turns of one role become one message with several text blocks;
    blank texts are left out (Converse refuses them)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        text = message["content"]
        if not text.strip():
            continue
        role = message["role"]
        if role == "system":
            system.append({"text": text})
        elif role not in ("user", "assistant"):
            raise ValueError(f"Converse has no role {role!r}")
        elif not turns and role == "assistant":
            continue
        elif turns and turns[-1]["role"] == role:
            turns[-1]["content"].append({"text": text})
        else:
            turns.append({"role": role, "content": [{"text": text}]})
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("a Converse request must end with a user message")
    return system, turns


def converse_request(model_id: str, prompt: RenderedPrompt, params: GenerationParams) -> dict[str, Any]:
    """The keyword arguments of `converse` / `converse_stream` for one prompt. `top_k` is
    not part of Converse's common inference parameters, so it is not sent; whitespace-only
    stop sequences (which some providers refuse) are left to the engine's stop filter."""
    if prompt.messages is None:
        raise ValueError("Bedrock Converse takes chat messages; the model profile rendered a text prompt")
    system, messages = converse_messages(prompt.messages)
    config: dict[str, Any] = {
        "maxTokens": params.max_new_tokens,
        "temperature": min(params.temperature, MAX_TEMPERATURE),
    }
    if params.top_p is not None:
        config["topP"] = params.top_p
    stop = [s for s in params.stop if s.strip()]
    if stop:
        config["stopSequences"] = stop
    request: dict[str, Any] = {"modelId": model_id, "messages": messages, "inferenceConfig": config}
    if system:
        request["system"] = system
    return request


def report(params: GenerationParams, stop_reason: str | None, usage: dict[str, Any] | None) -> None:
    """Bedrock says why it stopped (`max_tokens` is OpenAI's "length") and counts tokens
    with the model's own tokenizer: both go to the engine as they are."""
    if params.report is None:
        return
    if stop_reason:
        params.report.finish_reason = "length" if stop_reason == "max_tokens" else "stop"
    if usage:
        params.report.prompt_tokens = usage.get("inputTokens")
        params.report.completion_tokens = usage.get("outputTokens")


class BedrockGenerator:
    """A Generator on one Bedrock model id (a foundation model or an inference profile)."""

    def __init__(self, client: Any, model_id: str, retry: StartRetry | None = None) -> None:
        self.client = client
        self.model_id = model_id
        # a generation is sent again only when Bedrock refused it before starting (the
        # client itself makes one attempt: see factory.GENERATION)
        self.retry = retry

    def _send(self, call: Any, request: dict[str, Any]) -> Any:
        return call(**request) if self.retry is None else self.retry.call(lambda: call(**request))

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        """Text deltas of ConverseStream as they arrive; other content (reasoning, tool
        use) and the closing events add nothing to the reply."""
        request = converse_request(self.model_id, prompt, params)
        try:
            response = self._send(self.client.converse_stream, request)
            for event in response["stream"]:
                text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                if text:
                    yield text
                report(params, event.get("messageStop", {}).get("stopReason"), event.get("metadata", {}).get("usage"))
        except FAILURES as exc:
            raise map_bedrock_error(exc, self.model_id, STEP) from None

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        request = converse_request(self.model_id, prompt, params)
        try:
            response = self._send(self.client.converse, request)
        except FAILURES as exc:
            raise map_bedrock_error(exc, self.model_id, STEP) from None
        try:
            content = response["output"]["message"]["content"]
            report(params, response.get("stopReason"), response.get("usage"))
            return "".join(block.get("text", "") for block in content)
        except (KeyError, TypeError):
            raise UpstreamModelError(
                f"Bedrock model {self.model_id} answered in an unexpected shape: {str(response)[:200]}", step=STEP
            ) from None

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
