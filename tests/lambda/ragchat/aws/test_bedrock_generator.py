"""The Bedrock generator (Converse / ConverseStream) against the Bedrock runtime stand-in:
the wire format botocore reads, the request each prompt becomes, and each failure
Bedrock really answers mapped to an error that names its cause and its fix."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import EventStreamError

from ragchat.aws.bedrock import BedrockGenerator, converse_messages
from ragchat.aws.factory import GENERATION
from ragchat.aws.sagemaker import StartRetry
from ragchat.errors import ChatServiceError, UpstreamModelError, UpstreamThrottled, UpstreamTimeout
from ragchat.interfaces import GenerationParams, GenerationReport, RenderedPrompt
from standins.bedrock_runtime import ConverseModel

MODEL = "us.amazon.nova-2-lite-v1:0"  # a cross-region inference profile id
REPLY = "Managed Spot Training works with all instances supported in Amazon SageMaker."
QUESTION = "Which instances can I use with Managed Spot Training?"
PROMPT = RenderedPrompt(
    messages=(
        {"role": "system", "content": "Answer from the CONTEXT.\n\nCONTEXT:\nSpot works on all instances."},
        {"role": "user", "content": QUESTION},
    )
)


@pytest.fixture
def bedrock(aws_env, bedrock_server):
    bedrock_server.reset()
    bedrock_server.serve(MODEL, ConverseModel(REPLY))
    return bedrock_server


@pytest.fixture
def generator(bedrock) -> BedrockGenerator:
    # the Lambda's generation client (one attempt) and its retry of requests refused before starting
    retry = StartRetry(attempt_seconds=30, budget_seconds=120, base_delay=0.01)
    return BedrockGenerator(boto3.client("bedrock-runtime", config=GENERATION), MODEL, retry)


# -- the stand-in speaks the wire format botocore reads ---------------------------------------
def test_converse_stream_events_are_parsed_by_botocore_in_bedrock_order(bedrock):
    bedrock.serve(MODEL, ConverseModel("Spot works on all instances."))
    response = boto3.client("bedrock-runtime").converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hello"}]}]
    )
    events = list(response["stream"])

    kinds = [next(iter(e)) for e in events]
    assert kinds == ["messageStart"] + ["contentBlockDelta"] * 5 + ["contentBlockStop", "messageStop", "metadata"]
    assert events[0]["messageStart"] == {"role": "assistant"}  # the padding field `p` is not in the model
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1:6]) == "Spot works on all instances."
    assert events[-2]["messageStop"] == {"stopReason": "end_turn"}
    usage = events[-1]["metadata"]["usage"]
    assert usage["outputTokens"] == 5 and usage["totalTokens"] == usage["inputTokens"] + 5
    [call] = bedrock.calls(MODEL)
    assert call.path == "/model/us.amazon.nova-2-lite-v1%3A0/converse-stream"  # botocore quotes the id
    assert "/bedrock/aws4_request" in call.headers["authorization"]  # SigV4 for the signing name `bedrock`


def test_exception_events_reach_botocore_as_event_stream_errors(bedrock):
    bedrock.serve(MODEL, ConverseModel(REPLY, stream_error_after=2))
    response = boto3.client("bedrock-runtime").converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}]
    )
    received = []
    with pytest.raises(EventStreamError) as raised:
        for event in response["stream"]:
            received.append(event)
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert [next(iter(e)) for e in received] == ["messageStart", "contentBlockDelta", "contentBlockDelta"]


# -- mapping the engine's messages to Converse ------------------------------------------------
def test_messages_map_to_a_system_block_and_alternating_turns():
    system, turns = converse_messages(
        [
            {"role": "system", "content": "Answer from the CONTEXT."},
            {"role": "assistant", "content": "Hello! Ask me about SageMaker."},  # before any user turn
            {"role": "user", "content": "What is Neo?"},
            {"role": "assistant", "content": "   "},  # blank: Converse refuses it
            {"role": "user", "content": "And Spot?"},
            {"role": "assistant", "content": "Spot saves money."},
            {"role": "user", "content": QUESTION},
        ]
    )
    assert system == [{"text": "Answer from the CONTEXT."}]
    assert turns == [
        {"role": "user", "content": [{"text": "What is Neo?"}, {"text": "And Spot?"}]},
        {"role": "assistant", "content": [{"text": "Spot saves money."}]},
        {"role": "user", "content": [{"text": QUESTION}]},
    ]


def test_a_conversation_that_does_not_end_with_the_user_is_refused():
    with pytest.raises(ValueError, match="end with a user message"):
        converse_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])


def test_a_text_prompt_is_refused():
    with pytest.raises(ValueError, match="chat messages"):
        BedrockGenerator(None, MODEL).generate(RenderedPrompt(text="<human>: hi\n<bot>:"), GenerationParams())


# -- generation ---------------------------------------------------------------------------------
def test_generate_sends_converse_the_mapped_prompt_and_parameters(generator, bedrock):
    params = GenerationParams(temperature=1.7, top_k=40, max_new_tokens=300, stop=("\n\n", "END"))
    assert generator.generate(PROMPT, params) == REPLY

    [call] = bedrock.calls(MODEL)
    assert call.extra["streaming"] is False  # a buffered request: Converse
    assert call.json() == {
        "system": [{"text": "Answer from the CONTEXT.\n\nCONTEXT:\nSpot works on all instances."}],
        "messages": [{"role": "user", "content": [{"text": QUESTION}]}],
        # Converse takes temperature in 0..1 and has no top_k; Anthropic's models refuse
        # whitespace-only stop sequences, so those are left to the engine's stop filter
        "inferenceConfig": {"maxTokens": 300, "temperature": 1.0, "stopSequences": ["END"]},
    }


def test_stream_yields_the_text_deltas_as_they_come(generator, bedrock):
    pieces = list(generator.stream(PROMPT, GenerationParams()))

    assert len(pieces) == len(REPLY.split()) and "".join(pieces) == REPLY
    [call] = bedrock.calls(MODEL)
    assert call.extra["streaming"] is True


def test_bedrocks_stop_and_length_limits_are_honoured(generator, bedrock):
    assert generator.generate(PROMPT, GenerationParams(stop=("supported",))) == REPLY.split("supported")[0]
    assert "".join(generator.stream(PROMPT, GenerationParams(max_new_tokens=3))) == "Managed Spot Training"


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "converse-stream"])
def test_bedrocks_stop_reason_and_token_usage_are_reported(generator, bedrock, streaming):
    """`max_tokens` is OpenAI's "length"; the counts are Bedrock's own (its `usage`)."""
    report = GenerationReport()
    params = GenerationParams(max_new_tokens=3, top_p=0.8, report=report)
    reply = "".join(generator.stream(PROMPT, params)) if streaming else generator.generate(PROMPT, params)
    assert reply == "Managed Spot Training"
    [call] = bedrock.calls(MODEL)
    assert call.json()["inferenceConfig"]["topP"] == 0.8
    assert (report.finish_reason, report.completion_tokens) == ("length", 3)
    assert report.prompt_tokens == len(call.body) // 4  # what the stand-in's "tokenizer" counted

    finished = GenerationReport()
    generator.generate(PROMPT, GenerationParams(report=finished))
    assert finished.finish_reason == "stop" and finished.completion_tokens == len(REPLY.split())


# -- failures ---------------------------------------------------------------------------------
ROLE = "arn:aws:sts::123456789012:assumed-role/ragchat-ChatFunctionRole/ragchat-chat"
FM_ARN = "arn:aws:bedrock:us-east-2::foundation-model/amazon.nova-2-lite-v1:0"
MARKETPLACE = (
    "Model access is denied due to IAM user or service role is not authorized to perform the required AWS "
    "Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to this "
    "model. Refer to the Amazon Bedrock documentation for further details. Your AWS Marketplace subscription for "
    "this model cannot be completed at this time. If you recently fixed this issue, try again after 2 minutes."
)
ACCESS_FAILURES = [
    (
        "AccessDeniedException",
        f"User: {ROLE} is not authorized to perform: bedrock:InvokeModel on resource: {FM_ARN} because no "
        "identity-based policy allows the bedrock:InvokeModel action",
        "model_access_denied",
        "IAM role has no grant for this model",
        "bedrock_destination_regions",
    ),
    (
        "AccessDeniedException",
        f"User: {ROLE} is not authorized to perform: bedrock:InvokeModelWithResponseStream on resource: {FM_ARN} "
        "with an explicit deny in a service control policy: "
        "arn:aws:organizations::111122223333:policy/o-abc/service_control_policy/p-def",
        "model_access_denied",
        "service control policy denies",
        "organization's administrator",
    ),
    ("AccessDeniedException", MARKETPLACE, "model_access_denied", "no subscription", "aws-marketplace:Subscribe"),
    (
        "ResourceNotFoundException",
        "Model use case details have not been submitted for this account. Fill out the Anthropic use case details "
        "form before using the model. If you have already filled out the form, try again in 15 minutes.",
        "model_access_denied",
        "first-use form",
        "submit it once in the Bedrock console",
    ),
    (
        "ValidationException",
        "Invocation of model ID amazon.nova-2-lite-v1:0 with on-demand throughput isn\u2019t supported. Retry your "
        "request with the ID or ARN of an inference profile that contains this model.",
        "model_unavailable",
        "only through a cross-region inference profile",
        "geography prefix",
    ),
    (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
        "model_unavailable",
        "not offered here",
        "list-inference-profiles",
    ),
    (
        "ResourceNotFoundException",
        "Access denied. This Model is marked by provider as Legacy and you have not been actively using the model "
        "in the last 15 days. Please upgrade to an active model on Amazon Bedrock",
        "model_unavailable",
        "marked this model as legacy",
        "choose an active model",
    ),
]


@pytest.mark.parametrize(("code", "message", "error_code", "cause", "fix"), ACCESS_FAILURES)
@pytest.mark.parametrize("streamed", [False, True])
def test_access_failures_name_the_cause_and_the_fix(
    generator, bedrock, code, message, error_code, cause, fix, streamed
):
    bedrock.fail(MODEL, code, message, times=3)
    with pytest.raises(ChatServiceError) as raised:
        if streamed:
            list(generator.stream(PROMPT, GenerationParams()))
        else:
            generator.generate(PROMPT, GenerationParams())

    error = raised.value
    assert error.status == 502 and error.code == error_code and error.step == "generation"
    text = str(error)
    assert MODEL in text and message in text and cause in text and "Fix: " in text and fix in text
    assert len(bedrock.calls(MODEL)) == 1  # retrying cannot help: not retried


def test_an_unknown_model_id_is_named_with_the_fix(generator, bedrock):
    bedrock.models.clear()  # the stand-in serves no such id in this region
    with pytest.raises(ChatServiceError) as raised:
        generator.generate(PROMPT, GenerationParams())
    assert raised.value.code == "model_unavailable"
    assert "The provided model identifier is invalid." in str(raised.value)
    assert "-c ragchat:bedrock_model_id" in str(raised.value)


def test_throttling_is_retried_then_answers(generator, bedrock):
    bedrock.fail(MODEL, "ThrottlingException", "Too many requests, please wait before trying again.", times=2)
    assert generator.generate(PROMPT, GenerationParams()) == REPLY
    assert len(bedrock.calls(MODEL)) == 3


def test_persistent_throttling_asks_to_retry_later(generator, bedrock):
    bedrock.fail(MODEL, "ThrottlingException", "Too many tokens per day, please wait before trying again.", times=5)
    with pytest.raises(UpstreamThrottled) as raised:
        list(generator.stream(PROMPT, GenerationParams()))
    assert raised.value.status == 429 and raised.value.retry_after == 2
    assert "Too many tokens per day" in str(raised.value)
    assert len(bedrock.calls(MODEL)) == 3  # StartRetry: 3 attempts


def test_a_model_timeout_is_a_timeout(generator, bedrock):
    bedrock.fail(MODEL, "ModelTimeoutException", "Model has timed out in processing the request.", times=3)
    with pytest.raises(UpstreamTimeout):
        generator.generate(PROMPT, GenerationParams())
    assert len(bedrock.calls(MODEL)) == 1, "the model worked on it: never sent again"


@pytest.mark.parametrize(
    ("exception", "error"),
    [("modelStreamErrorException", UpstreamModelError), ("throttlingException", UpstreamThrottled)],
)
def test_an_exception_event_mid_reply_ends_the_stream_with_its_error(generator, bedrock, exception, error):
    bedrock.serve(MODEL, ConverseModel(REPLY, stream_error_after=3, stream_error=exception))
    received = []
    with pytest.raises(error) as raised:
        for piece in generator.stream(PROMPT, GenerationParams()):
            received.append(piece)
    assert len(received) == 3  # what came before the failure was already passed on
    assert exception in str(raised.value) and "while streaming" in str(raised.value)
