"""Payload contracts: how each model container wants to be asked and how it answers.

Plain data and JSON only (no boto3), so the model catalog can name a model's contract and
the CDK app can read it without the Lambda's runtime. The formats are documented, with
examples, in `model_code/README.md`; the tests replay exactly those."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .interfaces import FinishReason, GenerationParams, RenderedPrompt

PromptKind = Literal["text", "messages"]


class ContainerReportedError(Exception):
    """The container answered 200 but reported a failed generation in the body."""


def raise_on_reported_error(answer: Any) -> None:
    """LMI reports a failed generation as `details.finish_reason: "error"`, TGI as
    `{"error": ...}`, both with status 200: such a body is a failure, never an answer."""
    if not isinstance(answer, dict):
        return
    details = answer.get("details") or {}
    if answer.get("error") or (isinstance(details, dict) and details.get("finish_reason") == "error"):
        raise ContainerReportedError(str(answer.get("error") or "generation failed (finish_reason: error)"))


def stream_event(line: bytes) -> Any:
    """The JSON event of one streamed line (JSON Lines, or server-sent events' `data:`),
    None for a blank line or `[DONE]`; an error the container reports in it raises."""
    text = line.decode("utf-8").strip()
    if text.startswith("data:"):
        text = text[len("data:") :].strip()
    if not text or text == "[DONE]":
        return None
    event = json.loads(text)
    raise_on_reported_error(event)
    return event


@dataclass(frozen=True)
class PayloadContract:
    """How one container wants to be asked and how it answers. `prompt` is what the
    model profile must render for it; `containers` names what speaks it (image
    repositories, or model-package name prefixes), so the catalog can check an entry
    deploys a container its contract speaks."""

    prompt: ClassVar[PromptKind] = "text"
    containers: ClassVar[tuple[str, ...]] = ()
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
        event = stream_event(line)
        if event is None:
            return ""
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

    containers: ClassVar[tuple[str, ...]] = ("djl-inference",)
    stop_parameter: str = "stop_sequences"


@dataclass(frozen=True)
class TgiContract(TextPromptContract):
    """Hugging Face LLM container (TGI), for flan-t5: `parameters.stop`; buffered
    `[{"generated_text"}]`, streamed server-sent events `data:{"token": {"text"}}`."""

    containers: ClassVar[tuple[str, ...]] = ("huggingface-pytorch-tgi-inference",)
    stop_parameter: str = "stop"


@dataclass(frozen=True)
class JumpStartLlamaContract(PayloadContract):
    """JumpStart Llama-2 chat (`meta-textgeneration-llama-2-7b-f`): a dialog of messages,
    `CustomAttributes: accept_eula=true`, answer at `[0]["generation"]["content"]`. This
    container answers whole replies only, so the reply arrives as one piece."""

    prompt: ClassVar[PromptKind] = "messages"
    containers: ClassVar[tuple[str, ...]] = ("llama2-7b-f-",)
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


@dataclass(frozen=True)
class LmiChatContract(PayloadContract):
    """LMI's chat completions schema (OpenAI-style, on `/invocations` when the body has
    `messages`): the container applies the model's chat template. Buffered answers are a
    `chat.completion` (`choices[0].message.content`); streamed answers are JSON lines of
    `chat.completion.chunk` (`choices[0].delta.content`). The schema has no `top_k`, so
    the request carries temperature, not top_k; a temperature of 0 is greedy."""

    prompt: ClassVar[PromptKind] = "messages"
    containers: ClassVar[tuple[str, ...]] = ("djl-inference",)

    def request(self, prompt: RenderedPrompt, params: GenerationParams, stream: bool) -> dict[str, Any]:
        if prompt.messages is None:
            raise ValueError("the chat completions schema takes chat messages; the profile rendered a text prompt")
        body: dict[str, Any] = {
            "messages": list(prompt.messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream"] = True
        return body

    def parse(self, answer: Any) -> str:
        raise_on_reported_error(answer)
        choice = answer["choices"][0]
        _raise_on_failed_choice(choice)
        return choice["message"]["content"] or ""

    def parse_line(self, line: bytes) -> str:
        event = stream_event(line)
        if event is None:
            return ""
        choices = event.get("choices") or [{}]
        _raise_on_failed_choice(choices[0])
        return (choices[0].get("delta") or {}).get("content") or ""

    def parse_finish(self, line: bytes) -> tuple[FinishReason | None, int | None]:
        """Why the model stopped, from the last chunk's `finish_reason` (chunks carry no
        token counts)."""
        text = line.decode("utf-8").strip().removeprefix("data:").strip()
        try:
            reason = (json.loads(text).get("choices") or [{}])[0].get("finish_reason")
        except (json.JSONDecodeError, AttributeError, IndexError):
            return None, None
        return (("length" if reason == "length" else "stop") if reason else None), None


def _raise_on_failed_choice(choice: dict[str, Any]) -> None:
    if choice.get("finish_reason") == "error":
        raise ContainerReportedError("generation failed (finish_reason: error)")
