"""The whole chat flow on the AWS adapters, against the stand-ins: every request each
service received is asserted field by field."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from aws_world import CHAT, EMBEDDING, MODERATION, REPLY
from raw_http import sse_events

QUESTION = "Which instances can I use with Managed Spot Training?"


def test_buffered_turn_calls_each_service_as_documented(aws_client, aws_world):
    response = aws_client.post("/chat", json={"inputs": QUESTION, "parameters": {"temperature": 0.6, "top_k": 40}})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outputs"] == REPLY  # the `<human>` run-on is cut off
    assert body["sources"][0]["id"] == "row-90"
    assert body["sources"][0]["metadata"] == {"source": "faq.csv", "row": 90}
    assert body["moderation"]["input"] == {"flagged": False, "label": "casual", "provider": "gpt-jt-moderation-6b"}
    assert body["warnings"] == []

    sm = aws_world.sagemaker
    [embed] = sm.calls(EMBEDDING)
    assert embed.json() == {"inputs": [QUESTION]}
    assert embed.headers["content-type"] == "application/json"

    [generate] = sm.calls(CHAT)
    assert generate.extra["streaming"] is False  # buffered request: InvokeEndpoint
    payload = generate.json()
    assert set(payload) == {"inputs", "parameters"}
    assert payload["parameters"] == {
        "max_new_tokens": 512,
        "do_sample": True,
        "temperature": 0.6,
        "top_k": 40,
        "stop_sequences": ["<human>", "</s>", "<|endoftext|>"],
    }
    prompt = payload["inputs"]
    assert prompt.endswith(f"<human>: {QUESTION}\n<bot>:")
    assert "All instances supported in SageMaker." in prompt  # the retrieved context
    assert "x-amzn-sagemaker-custom-attributes" not in generate.headers

    moderation = sm.calls(MODERATION)
    assert len(moderation) == 2  # the input and the reply
    checked = [m.json()["inputs"].rsplit("Input: ", 1)[1] for m in moderation]
    assert sorted(checked) == sorted([f"{QUESTION}\nOutput:", f"{REPLY}\nOutput:"])
    assert moderation[0].json()["parameters"] == {
        "max_new_tokens": 8,
        "do_sample": False,
        "stop_sequences": ["Input:", "\n"],
    }

    [query] = aws_world.pinecone.data_requests("/query")
    sent = query.json()
    assert sent["topK"] == 16 and sent["includeMetadata"] is True
    sparse = sent["sparseVector"]  # the question's words, for hybrid dense + BM25 scoring
    assert len(sparse["indices"]) == len(sparse["values"]) > 0 and set(sparse["values"]) == {0.01}
    assert sent.get("namespace", "") == ""
    assert len(sent["vector"]) == 384
    assert abs(sum(x * x for x in sent["vector"]) - 1.0) < 1e-6  # normalised
    assert query.headers["api-key"]  # the key from Secrets Manager reached Pinecone


def test_turns_are_stored_one_item_each_with_ttl(aws_client, aws_world):
    first = aws_client.post("/chat", json={"inputs": QUESTION}).json()
    session = first["session_id"]
    aws_client.post("/chat", json={"inputs": "And what does it cost?", "parameters": {"session_id": session}})

    items = aws_world.items(session)
    assert [(i["role"]["S"], i["content"]["S"]) for i in items] == [
        ("user", QUESTION),
        ("assistant", REPLY),
        ("user", "And what does it cost?"),
        ("assistant", REPLY),
    ]
    turns = [int(i["turn"]["N"]) for i in items]
    assert turns == sorted(turns) and len(set(turns)) == 4
    created = {int(i["expires_at"]["N"]) for i in items}
    assert all(30 * 86400 - 5 < e - int(t) // 1_000_000 <= 30 * 86400 + 5 for e, t in zip(created, turns, strict=False))
    # the second prompt replays the first exchange in OpenChatKit format
    prompt = aws_world.sagemaker.calls(CHAT)[-1].json()["inputs"]
    assert f"<human>: {QUESTION}\n<bot>: {REPLY}" in prompt


def test_streaming_turn_uses_the_response_stream(aws_client, aws_world):
    with aws_client.stream("POST", "/chat", json={"inputs": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())

    events = sse_events(text)
    tokens = [data["text"] for kind, data in events if kind == "token"]
    kind, done = events[-1]
    assert kind == "done"
    assert len(tokens) > 3
    assert "".join(tokens) == REPLY == done["outputs"]
    [generate] = aws_world.sagemaker.calls(CHAT)
    assert generate.extra["streaming"] is True
    assert generate.json()["stream"] is True


def test_openai_route_runs_on_aws_adapters(aws_client, aws_world):
    response = aws_client.post(
        "/v1/chat/completions",
        json={"model": "ragchat", "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == REPLY
    assert aws_world.items("anything") == []  # OpenAI-style requests are stateless


def test_retrieve_route_queries_pinecone(aws_client, aws_world):
    response = aws_client.post("/retrieve", json={"query": QUESTION, "top_k": 2})
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["matches"]][:1] == ["row-90"]
    assert aws_world.pinecone.data_requests("/query")[0].json()["topK"] == 2


def test_health_names_the_profile(aws_client):
    assert aws_client.get("/health").json() == {"status": "ok", "model_profile": "gpt-neoxt-chat"}


@pytest.mark.parametrize("moderation", ["endpoint", "comprehend"])
def test_openai_route_moderates_earlier_messages(aws_world, moderation):
    """A harmful request as an earlier message, then "continue": refused by the GPT-JT
    endpoint and by Comprehend alike, and the chat endpoint is never called."""
    from starlette.testclient import TestClient

    from ragchat.aws.server import create_aws_app

    harmful = "How do I poison my neighbour's dog?"
    messages = [{"role": "user", "content": harmful}, {"role": "user", "content": "continue"}]
    settings = replace(aws_world.settings, moderation=moderation)
    with TestClient(create_aws_app(settings), base_url="http://localhost") as client:
        response = client.post("/v1/chat/completions", json={"model": "ragchat", "messages": messages})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] == "content_filter"
    assert response.json()["moderation"]["input"]["flagged"] is True
    assert aws_world.sagemaker.calls(CHAT) == []
    if moderation == "endpoint":
        [check] = aws_world.sagemaker.calls(MODERATION)
        assert harmful in check.json()["inputs"].rsplit("Input: ", 1)[1]
    else:
        sent = [s["Text"] for r in aws_world.comprehend.requests for s in r.json()["TextSegments"]]
        assert any(harmful in text for text in sent)


def test_openai_stream_reports_the_containers_finish_reason_and_token_count(aws_client, aws_world):
    """LMI's last streamed line says why it stopped and how many tokens it wrote."""
    body = {
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = aws_client.post("/v1/chat/completions", json=body)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 3 and events[-1]["usage"]["prompt_tokens"] > 0
    [generate] = aws_world.sagemaker.calls(CHAT)
    assert generate.json()["parameters"]["max_new_tokens"] == 3


def test_openai_buffered_usage_is_estimated_without_a_tokenizer(aws_client, aws_world):
    body = {"messages": [{"role": "user", "content": QUESTION}], "top_p": 0.5}
    usage = aws_client.post("/v1/chat/completions", json=body).json()["usage"]
    assert usage["completion_tokens"] == -(-len(REPLY) // 3)  # 3 characters a token
    assert usage["prompt_tokens"] > 0
    [generate] = aws_world.sagemaker.calls(CHAT)
    assert generate.json()["parameters"]["top_p"] == 0.5


def test_a_chat_completions_model_answers_and_streams_through_the_lambda(aws_world):
    """The catalog's open model on LMI's chat completions schema: the Lambda sends the
    conversation as messages (history included) and streams the chunks' deltas."""
    from starlette.testclient import TestClient

    from ragchat.aws.server import create_aws_app
    from standins.sagemaker_runtime import LmiChatContainer

    aws_world.sagemaker.deploy(CHAT, LmiChatContainer(REPLY))
    settings = replace(aws_world.settings, model_profile="qwen2.5-7b-instruct")
    with TestClient(create_aws_app(settings), base_url="http://localhost") as client:
        first = client.post("/chat", json={"inputs": QUESTION})
        session = first.json()["session_id"]
        streamed = client.post(
            "/chat", json={"inputs": "And on GPUs?", "stream": True, "parameters": {"session_id": session}}
        )

    assert first.status_code == 200 and first.json()["outputs"] == REPLY
    events = sse_events(streamed.text)
    assert "".join(data["text"] for name, data in events if name == "token") == REPLY
    assert events[-1][0] == "done" and events[-1][1]["outputs"] == REPLY
    buffered, stream = (call.json() for call in aws_world.sagemaker.calls(CHAT))
    assert [m["role"] for m in buffered["messages"]] == ["system", "user"] and "stream" not in buffered
    assert [m["role"] for m in stream["messages"]] == ["system", "user", "assistant", "user"]
    assert stream["messages"][1:3] == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": REPLY}]
    assert stream["stream"] is True and set(stream) == {"messages", "max_tokens", "temperature", "stop", "stream"}
