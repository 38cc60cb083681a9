"""The HTTP API: the contract, every bad-input case, and that failures store nothing."""

import json
import uuid

import pytest

SPOT = "Which instances can I use with Managed Spot Training?"


def post(client, path, body, **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, content=data, headers={"Content-Type": "application/json", **headers})


def test_chat_contract(client):
    r = post(client, "/chat", {"inputs": SPOT})
    assert r.status_code == 200
    body = r.json()
    assert body["outputs"] and uuid.UUID(body["session_id"])
    assert body["sources"][0]["metadata"]["row"] == 90
    assert set(body["sources"][0]) == {"id", "score", "text", "metadata"}
    assert body["moderation"]["input"]["flagged"] is False and "output" in body["moderation"]


def test_curl_default_content_type_is_accepted(client):
    """`curl -d '{...}'` labels the JSON body form-urlencoded; the README example uses it."""
    r = client.post(
        "/chat", content=json.dumps({"inputs": SPOT}), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 200


def test_follow_up_uses_session(client, engine):
    first = post(client, "/chat", {"inputs": SPOT}).json()
    r = post(client, "/chat", {"inputs": "And regions?", "parameters": {"session_id": first["session_id"]}})
    assert r.json()["session_id"] == first["session_id"]
    assert SPOT in engine.generator.prompts[1].text
    assert len(engine.store.load(first["session_id"])) == 4


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"inputs": ""}, 422, "inputs"),
        ({"inputs": "   \n "}, 422, "inputs"),
        ({"inputs": 42}, 422, "inputs"),
        ({"inputs": ["a"]}, 422, "inputs"),
        ({}, 422, "inputs"),
        ({"inputs": "x" * 8001}, 422, "inputs"),
        ({"inputs": "q", "parameters": {"max_new_tokens": 0}}, 422, "parameters.max_new_tokens"),
        ({"inputs": "q", "parameters": {"max_new_tokens": 2049}}, 422, "parameters.max_new_tokens"),
        ({"inputs": "q", "parameters": {"max_new_tokens": "10"}}, 422, "parameters.max_new_tokens"),
        ({"inputs": "q", "parameters": {"temperature": -0.1}}, 422, "parameters.temperature"),
        ({"inputs": "q", "parameters": {"temperature": 2.5}}, 422, "parameters.temperature"),
        ({"inputs": "q", "parameters": {"top_k": -1}}, 422, "parameters.top_k"),
        ({"inputs": "q", "parameters": {"top_k": 1001}}, 422, "parameters.top_k"),
        ({"inputs": "q", "parameters": {"session_id": "../etc/passwd"}}, 422, "parameters.session_id"),
        ({"inputs": "q", "parameters": {"session_id": "x" * 129}}, 422, "parameters.session_id"),
        ({"inputs": "q", "parameters": {"no_retrieval": "yes"}}, 422, "parameters.no_retrieval"),
        ({"inputs": "q", "parameters": {"temprature": 0.5}}, 422, "parameters.temprature"),
        ({"inputs": "q", "extra": 1}, 422, "extra"),
        ({"inputs": "q", "parameters": []}, 422, "parameters"),
        ('{"inputs": "q"', 400, "body"),
        ("[1, 2]", 400, "body"),
        (b"\xff\xfe", 400, "body"),
    ],
)
def test_bad_input_names_the_field(client, engine, body, status, field):
    r = post(client, "/chat", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["message"]
    assert engine.store.turns == {} and engine.generator.prompts == []


def test_wrong_content_type_is_415(client):
    r = client.post("/chat", content=json.dumps({"inputs": "q"}), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"


def test_oversized_body_is_413(client):
    r = post(client, "/chat", {"inputs": "q", "pad": "x" * 300_000})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"


def test_unknown_route_and_method_are_json(client):
    assert client.get("/nope").json()["error"]["code"] == "not_found"
    r = client.get("/chat")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_failed_request_changes_no_stored_conversation(client, engine):
    sid = post(client, "/chat", {"inputs": SPOT}).json()["session_id"]
    before = engine.store.load(sid)
    post(client, "/chat", {"inputs": "q", "parameters": {"session_id": sid, "top_k": 5000}})
    assert engine.store.load(sid) == before


def test_unexpected_failure_is_json_500_without_trace(engine, client):
    def broken(*a, **k):
        raise RuntimeError("secret internals")

    engine.generator.stream = broken
    r = post(client, "/chat", {"inputs": SPOT})
    assert r.status_code == 500
    assert "secret internals" not in r.text and r.json()["error"]["code"] == "internal_error"


def test_retrieve(client):
    r = post(client, "/retrieve", {"query": SPOT, "top_k": 2})
    matches = r.json()["matches"]
    assert len(matches) == 2 and matches[0]["metadata"]["row"] == 90
    assert matches[0]["score"] >= matches[1]["score"]
    assert r.json()["sources"][0]["id"] == matches[0]["id"] and r.json()["query"] == SPOT


def test_retrieve_a_followup_with_its_conversation(client):
    history = [{"role": "user", "content": "What is Managed Spot Training?"}, {"role": "assistant", "content": "…"}]
    body = post(client, "/retrieve", {"query": "Does it cut cost?", "history": history}).json()
    assert body["query"] == "Does it cut cost?\nWhat is Managed Spot Training?"
    assert body["matches"][0]["metadata"]["row"] == 84 and body["min_score"] == 0.28


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "q", "top_k": 0}, "top_k"),
        ({"query": "q", "top_k": 101}, "top_k"),
        ({"q": "x"}, "query"),
        ({"query": "q", "history": [{"role": "system", "content": "x"}]}, "history.0.role"),
    ],
)
def test_retrieve_bad_input(client, body, field):
    r = post(client, "/retrieve", body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "model_profile": "gpt-neoxt-chat"}


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((event, "\n".join(data)))
    return events


@pytest.mark.parametrize("how", ["flag", "accept"])
def test_chat_streams_tokens_then_final_event(client, engine, how):
    body = {"inputs": SPOT, "stream": True} if how == "flag" else {"inputs": SPOT}
    headers = {"Accept": "text/event-stream"} if how == "accept" else {}
    with client.stream(
        "POST", "/chat", content=json.dumps(body), headers={"Content-Type": "application/json", **headers}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.read().decode())
    tokens = [json.loads(d)["text"] for e, d in events if e == "token"]
    assert len(tokens) >= 3
    name, data = events[-1]
    final = json.loads(data)
    assert name == "done" and final["outputs"] == "".join(tokens).strip()
    assert final["sources"][0]["metadata"]["row"] == 90 and uuid.UUID(final["session_id"])
    assert len(engine.store.load(final["session_id"])) == 2


def test_streaming_bad_input_is_still_json_4xx(client):
    r = post(client, "/chat", {"inputs": "", "stream": True})
    assert r.status_code == 422 and r.json()["error"]["field"] == "inputs"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {}}, "logit_bias"),
    ],
)
def test_openai_bad_input(client, body, field):
    r = post(client, "/v1/chat/completions", body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field
