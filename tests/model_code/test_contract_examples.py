"""The request/response examples of model_code/README.md, replayed through the Lambda's
adapters: requests must be exactly what the adapters send, responses must parse to the
reply the document shows (buffered and streamed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ragchat.aws.generators import SageMakerGenerator
from ragchat.aws.moderation import GptJtModerator, parse_label
from ragchat.catalog import CHAT_MODELS, chat_model, get_profile
from ragchat.errors import UpstreamModelError
from ragchat.interfaces import GenerationParams
from ragchat.stops import StopFilter

QUESTION = "Which instances can I use with Managed Spot Training?"
CONTEXT = "Managed Spot Training is supported on all instances supported in Amazon SageMaker."
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


class ReplayRuntime:
    """Answers with a README example and records what the adapter sent."""

    def __init__(self, answer: Any = None, lines: list[bytes] | None = None) -> None:
        self.answer, self.lines = answer, lines or []
        self.sent: list[tuple[Any, str | None]] = []

    def invoke(self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None) -> Any:
        self.sent.append((payload, custom_attributes))
        return self.answer

    def invoke_stream(
        self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None
    ) -> Iterator[bytes]:
        self.sent.append((payload, custom_attributes))
        yield from self.lines


def lines_of(example: str) -> list[bytes]:
    return [line.encode() for line in example.splitlines()]


def render(profile_name: str):
    profile = get_profile(profile_name)
    return profile, profile.render(QUESTION, CONTEXT, [], NOW), GenerationParams(stop=profile.stop)


def cleaned(profile, pieces) -> str:
    """What the engine makes of the generator's pieces: the stop rule applied."""
    return "".join(StopFilter(profile.stop, profile.strip_tokens).feed_all(pieces))


SAGEMAKER_MODELS = [m for m in CHAT_MODELS.values() if m.backend == "sagemaker"]  # Bedrock: Converse, no container


@pytest.mark.parametrize("model", SAGEMAKER_MODELS, ids=lambda m: m.name)
def test_buffered_examples(readme_examples, model):
    examples = model.examples
    profile, prompt, params = render(model.name)
    runtime = ReplayRuntime(answer=json.loads(readme_examples[examples.response]))
    generator = SageMakerGenerator(runtime, "chat", model.contract)

    reply = cleaned(profile, [generator.generate(prompt, params)])

    assert reply == readme_examples[examples.reply]
    sent, custom_attributes = runtime.sent[0]
    if examples.request:
        assert sent == json.loads(readme_examples[examples.request])
    assert custom_attributes == model.contract.custom_attributes


@pytest.mark.parametrize("model", [m for m in SAGEMAKER_MODELS if m.contract.streams], ids=lambda m: m.name)
def test_streamed_examples(readme_examples, model):
    examples = model.examples
    profile, prompt, params = render(model.name)
    runtime = ReplayRuntime(lines=lines_of(readme_examples[examples.stream]))
    generator = SageMakerGenerator(runtime, "chat", model.contract)

    assert cleaned(profile, generator.stream(prompt, params)) == readme_examples[examples.reply]
    assert runtime.sent[0][0] == json.loads(readme_examples[examples.stream_request])


def test_streamed_lines_join_to_the_final_generated_text(readme_examples):
    """The final line's `generated_text` is the concatenation of every token's text."""
    for name in ("lmi-stream", "tgi-stream"):
        events = [json.loads(line.removeprefix("data:")) for line in readme_examples[name].splitlines()]
        tokens = "".join(e["token"]["text"] for e in events if not e["token"].get("special"))
        assert tokens == events[-1]["generated_text"], name


def test_an_error_reported_mid_stream_is_an_upstream_error(readme_examples):
    profile, prompt, params = render("gpt-neoxt-chat")
    runtime = ReplayRuntime(lines=lines_of(readme_examples["lmi-stream-error"]))
    generator = SageMakerGenerator(runtime, "chat", chat_model("gpt-neoxt-chat").contract)

    with pytest.raises(UpstreamModelError, match="failed mid-stream"):
        list(generator.stream(prompt, params))


def test_an_error_reported_in_a_buffered_answer_is_an_upstream_error():
    profile, prompt, params = render("gpt-neoxt-chat")
    answer = {"generated_text": "", "details": {"finish_reason": "error", "generated_tokens": None}}
    generator = SageMakerGenerator(ReplayRuntime(answer=answer), "chat", chat_model("gpt-neoxt-chat").contract)

    with pytest.raises(UpstreamModelError, match="finish_reason: error"):
        generator.generate(prompt, params)


def test_moderation_example(readme_examples):
    runtime = ReplayRuntime(answer=json.loads(readme_examples["moderation-response"]))

    result = GptJtModerator(runtime, "moderation").check(QUESTION)

    assert runtime.sent[0][0] == json.loads(readme_examples["moderation-request"])
    assert result.label == readme_examples["moderation-label"] == parse_label(runtime.answer["generated_text"])
    assert result.flagged is False


def test_a_chat_completion_reporting_a_failure_is_an_upstream_error():
    profile, prompt, params = render("qwen2.5-7b-instruct")
    contract = chat_model("qwen2.5-7b-instruct").contract
    ok = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "You"}, "finish_reason": None}],
    }
    failed = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}
    lines = [json.dumps(ok).encode(), json.dumps(failed).encode()]
    with pytest.raises(UpstreamModelError, match="failed mid-stream"):
        list(SageMakerGenerator(ReplayRuntime(lines=lines), "chat", contract).stream(prompt, params))
    answer = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "error"}],
    }
    with pytest.raises(UpstreamModelError, match="finish_reason: error"):
        SageMakerGenerator(ReplayRuntime(answer=answer), "chat", contract).generate(prompt, params)


def test_the_last_chat_chunk_says_why_the_model_stopped(readme_examples):
    contract = chat_model("qwen2.5-7b-instruct").contract
    last = readme_examples["qwen-stream"].splitlines()[-1].encode()
    assert contract.parse_finish(last) == ("stop", None)
    truncated = last.replace(b'"finish_reason": "eos_token"', b'"finish_reason": "length"')
    assert contract.parse_finish(truncated) == ("length", None)
