"""`chat_model=bedrock` through the Lambda's app against the Bedrock runtime stand-in:
the turn's prompt as Converse messages, history, streaming, and failures as HTTP answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aws_world import BEDROCK_MODEL, CHAT, REPLY, aws_app_client
from ragchat.aws.settings import AwsSettings, ConfigurationError
from ragchat.prompts import INSTRUCTIONS
from raw_http import sse_events
from standins.bedrock_runtime import ConverseModel

QUESTION = "Which instances can I use with Managed Spot Training?"


@pytest.fixture
def bedrock(aws_world):
    """The deployment with `chat_model=bedrock`: no chat endpoint, a Bedrock model id."""
    aws_world.settings = replace(
        aws_world.settings, model_profile="bedrock", chat_endpoint="", bedrock_model_id=BEDROCK_MODEL
    )
    aws_world.bedrock.serve(BEDROCK_MODEL, ConverseModel(REPLY))
    return aws_world


@pytest.fixture
def client(bedrock):
    with aws_app_client(bedrock.settings) as test_client:
        yield test_client


# -- a turn through the Lambda's app ----------------------------------------------------------
def test_buffered_turn_calls_converse_with_the_mapped_prompt(client, bedrock):
    response = client.post("/chat", json={"inputs": QUESTION, "parameters": {"temperature": 0.6, "top_k": 40}})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outputs"] == REPLY
    assert body["sources"][0]["id"] == "row-90"
    [call] = bedrock.bedrock.calls(BEDROCK_MODEL)
    assert call.extra["streaming"] is False  # a buffered request: Converse
    sent = call.json()
    assert set(sent) == {"system", "messages", "inferenceConfig"}
    [system] = sent["system"]
    assert system["text"].startswith(INSTRUCTIONS + "\n\nCONTEXT:\n")
    assert "All instances supported in SageMaker." in system["text"]  # the retrieved context
    assert sent["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]
    assert sent["inferenceConfig"] == {"maxTokens": 512, "temperature": 0.6}  # Converse has no top_k
    assert bedrock.sagemaker.calls(CHAT) == []  # no chat endpoint is called
    assert [i["content"]["S"] for i in bedrock.items(body["session_id"])] == [QUESTION, REPLY]


def test_history_is_replayed_as_alternating_turns(client, bedrock):
    first = client.post("/chat", json={"inputs": QUESTION}).json()
    client.post("/chat", json={"inputs": "And what does it cost?", "parameters": {"session_id": first["session_id"]}})

    second = bedrock.bedrock.calls(BEDROCK_MODEL)[1].json()
    assert second["messages"] == [
        {"role": "user", "content": [{"text": QUESTION}]},
        {"role": "assistant", "content": [{"text": REPLY}]},
        {"role": "user", "content": [{"text": "And what does it cost?"}]},
    ]


def test_streamed_turn_sends_tokens_as_converse_stream_delivers_them(client, bedrock):
    with client.stream("POST", "/chat", json={"inputs": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        events = sse_events("".join(response.iter_text()))

    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) > 5
    assert "".join(tokens) == REPLY
    assert events[-1][0] == "done" and events[-1][1]["outputs"] == REPLY
    [call] = bedrock.bedrock.calls(BEDROCK_MODEL)
    assert call.extra["streaming"] is True


def test_openai_route_with_any_message_order_reaches_converse_valid(client, bedrock):
    """Clients send a leading assistant greeting or two user messages in a row; Converse
    (and the stand-in) refuse both unless they are mapped."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "assistant", "content": "Hi! Ask me about SageMaker."},
        {"role": "user", "content": "I use Spot."},
        {"role": "user", "content": QUESTION},
    ]
    response = client.post(
        "/v1/chat/completions", json={"model": "x", "messages": messages, "temperature": 1.7, "stop": ["\n\n", "END"]}
    )

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == REPLY
    sent = bedrock.bedrock.calls(BEDROCK_MODEL)[0].json()
    assert sent["messages"] == [{"role": "user", "content": [{"text": "I use Spot."}, {"text": QUESTION}]}]
    assert sent["inferenceConfig"]["temperature"] == 1.0  # Converse accepts 0..1
    # Anthropic's models refuse whitespace-only stop sequences; the engine's stop filter applies them
    assert sent["inferenceConfig"]["stopSequences"] == ["END"]


# -- failures -------------------------------------------------------------------------------
def test_an_access_failure_is_a_502_naming_cause_and_fix_and_stores_nothing(client, bedrock):
    message = "Model use case details have not been submitted for this account. Fill out the Anthropic use case "
    bedrock.bedrock.fail(BEDROCK_MODEL, "ResourceNotFoundException", message + "details form before using the model.")
    stored_before = bedrock.dynamodb.scan(TableName=bedrock.settings.table)["Count"]

    # ConverseStream fails before the first token: a plain HTTP error, as for a buffered request
    response = client.post("/chat", json={"inputs": QUESTION, "stream": True})

    assert response.status_code == 502
    error = response.json()["error"]
    assert set(error) == {"code", "message", "step"}
    assert error["code"] == "model_access_denied" and error["step"] == "generation"
    assert message in error["message"] and "Fix: submit it once in the Bedrock console" in error["message"]
    assert bedrock.dynamodb.scan(TableName=bedrock.settings.table)["Count"] == stored_before


def test_an_exception_event_mid_reply_ends_the_sse_stream_with_an_error_event(client, bedrock):
    bedrock.bedrock.serve(BEDROCK_MODEL, ConverseModel(REPLY, stream_error_after=3))
    with client.stream("POST", "/chat", json={"inputs": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        events = sse_events("".join(response.iter_text()))

    assert [name for name, _ in events] == ["token"] * 3 + ["error"]
    error = events[-1][1]["error"]
    assert error["code"] == "model_error" and error["step"] == "generation"
    assert "modelStreamErrorException" in error["message"]


# -- configuration ----------------------------------------------------------------------------
def test_settings_need_the_model_id_and_no_chat_endpoint(bedrock):
    env = {k: v for k, v in bedrock.lambda_env().items() if k != "RAGCHAT_CHAT_ENDPOINT"}
    assert AwsSettings.from_env(env).bedrock_model_id == BEDROCK_MODEL
    del env["RAGCHAT_BEDROCK_MODEL_ID"]
    with pytest.raises(ConfigurationError, match="RAGCHAT_BEDROCK_MODEL_ID"):
        AwsSettings.from_env(env)
