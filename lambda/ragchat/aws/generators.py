"""Text generation on SageMaker: one payload contract per container, one generator.

A contract says how to ask the container (request body, headers) and how to read its
buffered answer and its streamed lines. The formats are documented, with examples, in
`model_code/README.md`; the tests replay exactly those."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import UpstreamModelError
from ..interfaces import FinishReason, GenerationParams, RenderedPrompt
from .sagemaker import ContainerReportedError, SageMakerRuntime, raise_on_reported_error

STEP = "generation"
CHARS_PER_TOKEN = 3.0  # conservative for English BPE: the Lambda has no tokenizer


@dataclass(frozen=True)
class PayloadContract:
    """How one container wants to be asked and how it answers."""

    streams: bool = True
    custom_attributes: str | None = None

    def request(self, prompt: RenderedPrompt, params: GenerationParams, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, answer: Any) -> str:
        raise NotImplementedError

    def parse_line(self, line: bytes) -> str:
        """The text a streamed line adds; special tokens and the summary line add nothing.
        A container that fails mid-stream says so in a line (the HTTP status is already
        200): TGI with `{"error"}`, LMI with `details.finish_reason == "error"`."""
        text = line.decode("utf-8").strip()
        if text.startswith("data:"):
            text = text[len("data:") :].strip()
        if not text or text == "[DONE]":
            return ""
        event = json.loads(text)
        raise_on_reported_error(event)
        token = event.get("token") or {}
        if token.get("special") or token.get("special_token"):
            return ""
        return token.get("text") or ""

    def parse_finish(self, line: bytes) -> tuple[FinishReason | None, int | None]:
        """Why the container stopped and how many tokens it wrote, from the `details` its
        last streamed line carries (LMI and TGI alike); (None, None) where it has none."""
        text = line.decode("utf-8").strip().removeprefix("data:").strip()
        try:
            details = json.loads(text).get("details") or {}
        except (json.JSONDecodeError, AttributeError):
            return None, None
        reason, tokens = details.get("finish_reason"), details.get("generated_tokens")
        finish: FinishReason | None = ("length" if reason == "length" else "stop") if reason else None
        return finish, tokens if isinstance(tokens, int) else None


def _sampling(params: GenerationParams) -> dict[str, Any]:
    sampling: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": params.temperature > 0}
    if params.temperature > 0:
        sampling.update(temperature=params.temperature, top_k=params.top_k)
        if params.top_p is not None:
            sampling["top_p"] = params.top_p
    return sampling


def _text_prompt(prompt: RenderedPrompt) -> str:
    if prompt.text is None:
        raise ValueError("this container takes a text prompt; the model profile rendered chat messages")
    return prompt.text


@dataclass(frozen=True)
class TextPromptContract(PayloadContract):
    """Containers that take `{"inputs": <prompt>, "parameters", "stream"}` and answer
    `generated_text` (alone or in a one-element list); they differ in what they call the
    stop parameter and in how they frame streamed tokens (both read by `parse_line`)."""

    stop_parameter: str = "stop"

    def request(self, prompt: RenderedPrompt, params: GenerationParams, stream: bool) -> dict[str, Any]:
        parameters = _sampling(params)
        if params.stop:
            parameters[self.stop_parameter] = list(params.stop)
        body: dict[str, Any] = {"inputs": _text_prompt(prompt), "parameters": parameters}
        if stream:
            body["stream"] = True
        return body

    def parse(self, answer: Any) -> str:
        if isinstance(answer, list):
            answer = answer[0] if answer else {}
        raise_on_reported_error(answer)
        return answer["generated_text"]


@dataclass(frozen=True)
class LmiContract(TextPromptContract):
    """DJL Serving / LMI with rolling batch (GPT-NeoXT): `parameters.stop_sequences`;
    buffered `{"generated_text"}`, streamed JSON lines `{"token": {"text"}}`."""

    stop_parameter: str = "stop_sequences"


@dataclass(frozen=True)
class TgiContract(TextPromptContract):
    """Hugging Face LLM container (TGI), for flan-t5: `parameters.stop`; buffered
    `[{"generated_text"}]`, streamed server-sent events `data:{"token": {"text"}}`."""

    stop_parameter: str = "stop"


@dataclass(frozen=True)
class JumpStartLlamaContract(PayloadContract):
    """JumpStart Llama-2 chat (`meta-textgeneration-llama-2-7b-f`): a dialog of messages,
    `CustomAttributes: accept_eula=true`, answer at `[0]["generation"]["content"]`. This
    container answers whole replies only, so the reply arrives as one piece."""

    streams: bool = False
    custom_attributes: str | None = "accept_eula=true"

    def request(self, prompt: RenderedPrompt, params: GenerationParams, stream: bool) -> dict[str, Any]:
        if prompt.messages is None:
            raise ValueError("Llama-2 chat takes chat messages; the model profile rendered a text prompt")
        parameters: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "top_p": 0.9 if params.top_p is None else params.top_p,
            "temperature": params.temperature,
            "return_full_text": False,
        }
        return {"inputs": [list(prompt.messages)], "parameters": parameters}

    def parse(self, answer: Any) -> str:
        return answer[0]["generation"]["content"]


CONTRACTS: dict[str, PayloadContract] = {
    "gpt-neoxt-chat": LmiContract(),
    "flan-t5": TgiContract(),
    "llama-2-chat": JumpStartLlamaContract(),
}


class SageMakerGenerator:
    def __init__(self, runtime: SageMakerRuntime, endpoint: str, contract: PayloadContract) -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.contract = contract

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        contract = self.contract
        if not contract.streams:
            yield self.generate(prompt, params)
            return
        body = contract.request(prompt, params, stream=True)
        lines = self.runtime.invoke_stream(self.endpoint, body, step=STEP, custom_attributes=contract.custom_attributes)
        last = b""
        for line in lines:
            last = line if line.strip() else last
            try:
                piece = contract.parse_line(line)
            except ContainerReportedError as exc:
                raise UpstreamModelError(f"endpoint {self.endpoint} failed mid-stream: {exc}", step=STEP) from None
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
                message = f"endpoint {self.endpoint} streamed an unreadable line: {exc}"
                raise UpstreamModelError(message, step=STEP) from None
            if piece:
                yield piece
        if params.report is not None and last:
            params.report.finish_reason, params.report.completion_tokens = contract.parse_finish(last)

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        contract = self.contract
        body = contract.request(prompt, params, stream=False)
        answer = self.runtime.invoke(self.endpoint, body, step=STEP, custom_attributes=contract.custom_attributes)
        try:
            return contract.parse(answer)
        except ContainerReportedError as exc:
            raise UpstreamModelError(f"endpoint {self.endpoint} failed: {exc}", step=STEP) from None
        except (KeyError, IndexError, TypeError):
            raise UpstreamModelError(
                f"endpoint {self.endpoint} answered in an unexpected shape: {str(answer)[:200]}", step=STEP
            ) from None

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
