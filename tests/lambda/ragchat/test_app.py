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


@pytest.mark.parametrize(
    "content_type",
    [
        None,  # no label at all
        "application/x-www-form-urlencoded",  # curl -d's default, and a cross-site <form>: no preflight
        "text/plain",  # a cross-site fetch(..., {mode: "no-cors"})
        "multipart/form-data; boundary=x",
    ],
)
@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions", "/retrieve"])
def test_every_post_must_be_labelled_json(client, engine, content_type, path):
    """A page on another site can send these without a CORS preflight; JSON needs one,
    which the app never grants. The victim's session gets nothing."""
    body = {"inputs": SPOT, "parameters": {"session_id": "victim"}}
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post(path, content=json.dumps(body), headers=headers)

    assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"
    assert "Content-Type: application/json" in r.json()["error"]["message"]
    assert "curl --json" in r.json()["error"]["message"]
    assert engine.store.turns == {} and engine.generator.prompts == []


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("[::1]evil.example", False),  # text after the bracket that is not a port
        ("[::1]:80x", False),
        ("127.0.0.1:evil.example", False),  # text after the colon that is not a port
        ("attacker.example", False),  # DNS rebinding: the attacker's name, resolved to 127.0.0.1
        ("attacker.example:8080", False),
        ("localhost.attacker.example", False),
        ("", False),
    ],
)
def test_only_loopback_host_names_are_served(client, engine, host, allowed):
    r = post(client, "/chat", {"inputs": SPOT}, Host=host)
    page = client.get("/", headers={"Host": host})

    if allowed:
        assert r.status_code == 200 and page.status_code == 200
    else:
        assert r.status_code == 403 and r.json()["error"]["field"] == "host"
        assert page.status_code == 403 and "allowed-host" in page.json()["error"]["message"]
        assert engine.store.turns == {}


def test_allowed_hosts_extend_the_loopback_names(engine):
    from starlette.testclient import TestClient

    from ragchat.app import create_app
    from ragchat.cli import serving_hosts

    hosts = ["localhost", *serving_hosts("192.168.1.20"), "chat.internal:8080"]
    with TestClient(create_app(lambda: engine, allowed_hosts=hosts)) as client:
        statuses = {
            host: client.get("/health", headers={"Host": host}).status_code
            for host in ("192.168.1.20:8080", "chat.internal:8080", "chat.internal:9000", "localhost:1")
        }
    assert statuses == {
        "192.168.1.20:8080": 200,
        "chat.internal:8080": 200,
        "chat.internal:9000": 403,
        "localhost:1": 200,
    }
    assert serving_hosts("0.0.0.0") == [] and serving_hosts("::1") == ["[::1]"]


def test_cross_site_origins_are_refused(client, engine):
    same = post(client, "/chat", {"inputs": SPOT}, Origin="http://localhost")
    foreign = post(client, "/chat", {"inputs": SPOT}, Origin="https://attacker.example")
    other_port = post(client, "/chat", {"inputs": SPOT}, Origin="http://localhost:3000")

    assert same.status_code == 200
    assert foreign.status_code == 403 and foreign.json()["error"]["field"] == "origin"
    assert other_port.status_code == 403
    assert len(engine.store.turns) == 1


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
        ('{"inputs": "q", "parameters": {"temperature": NaN}}', 400, "body"),
        # the standard library answered these two with a 500 and two stack traces
        ('{"inputs": "q", "parameters": {"max_new_tokens": ' + "9" * 5000 + "}}", 400, "body"),
        ('{"inputs": "q", "parameters": ' + "[" * 100_000 + "]" * 100_000 + "}", 400, "body"),
        ('{"inputs": "q", "parameters": {"max_new_tokens": ' + "9" * 4000 + "}}", 422, "parameters.max_new_tokens"),
    ],
)
def test_bad_input_names_the_field(client, engine, body, status, field):
    r = post(client, "/chat", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["message"]
    assert engine.store.turns == {} and engine.generator.prompts == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"inputs": "q", "parameters": {"max_new_tokens": ' + "9" * 5000 + "}}", "number out of range"),
        ('{"inputs": "q", "parameters": ' + "[" * 100_000 + "]" * 100_000 + "}", "recursion limit exceeded"),
    ],
)
def test_huge_numbers_and_deep_nesting_are_named_without_a_stack_trace(client, caplog, raw, problem):
    r = post(client, "/chat", raw)
    assert r.status_code == 400 and problem in r.json()["error"]["message"]
    assert [record for record in caplog.records if record.levelname == "ERROR"] == []


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


def test_chat_says_when_the_reply_was_cut_at_the_token_limit(client):
    """`finish_reason` as on /v1: "length" when max_new_tokens cut the reply, in the JSON
    response and in the stream's final event."""
    whole = post(client, "/chat", {"inputs": SPOT}).json()
    assert whole["finish_reason"] == "stop" and whole["usage"]["completion_tokens"] == 6
    cut = post(client, "/chat", {"inputs": SPOT, "parameters": {"max_new_tokens": 3}}).json()
    assert cut["outputs"] == "Spot training works"
    assert cut["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 3
    streamed = post(client, "/chat", {"inputs": SPOT, "stream": True, "parameters": {"max_new_tokens": 3}})
    name, data = parse_sse(streamed.text)[-1]
    assert name == "done" and json.loads(data)["finish_reason"] == "length"


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
        ({"messages": [{"role": "user", "content": "hi"}], "logit_bias": []}, "logit_bias"),
        ({"messages": [{"role": "user", "content": "hi"}], "frequency": 1}, "frequency"),  # unknown: refused
    ],
)
def test_openai_bad_input(client, body, field):
    r = post(client, "/v1/chat/completions", body)
    assert r.status_code == 400 and r.json()["error"]["field"] == field


def test_a_request_without_max_new_tokens_gets_the_profiles_short_default():
    """The local profile answers short by default (the page and the REPL send no limit),
    with its repetition penalty; an explicit limit still wins."""
    from starlette.testclient import TestClient

    from conftest import make_engine
    from ragchat.app import create_app
    from ragchat.catalog import get_profile

    profile = get_profile("smollm2-local")
    engine = make_engine("smollm2-local")
    with TestClient(create_app(lambda: engine), base_url="http://localhost") as local:
        # questions the FAQ answers: with no source, this profile does not call the model
        assert local.post("/chat", json={"inputs": SPOT}).status_code == 200
        assert local.post("/chat", json={"inputs": SPOT, "stream": True}).status_code == 200
        openai = {"messages": [{"role": "user", "content": SPOT}]}
        assert local.post("/v1/chat/completions", json=openai).status_code == 200
        assert local.post("/chat", json={"inputs": SPOT, "parameters": {"max_new_tokens": 7}}).status_code == 200
    limits = [p.max_new_tokens for p in engine.generator.params]
    assert limits == [profile.default_max_new_tokens] * 3 + [7]
    assert profile.default_max_new_tokens < 512 and profile.repetition_penalty > 1
    assert {p.repetition_penalty for p in engine.generator.params} == {profile.repetition_penalty}
    system = engine.generator.prompts[0].messages[0]["content"]
    assert system.startswith(profile.instructions) and "only" in profile.instructions


def test_the_page_policy_allows_only_its_own_inline_script_and_style(client):
    """No 'unsafe-inline': the policy names the SHA-256 of the page's one script and one
    style block (the headless Chromium test shows the page still works under it)."""
    import base64
    import hashlib
    import re

    r = client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";"))
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        [block] = re.findall(rf"<{tag}>(.*?)</{tag}>", r.text, flags=re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/retrieve", {"query": SPOT, "history": [{"role": "nobody", "content": "x"}] * 200}, "history.0.role"),
        ("/v1/chat/completions", {"messages": [{"role": "nobody", "content": "x"}] * 200}, "messages.0.role"),
    ],
    ids=["retrieve", "openai"],
)
def test_a_validation_error_lists_the_first_20_errors_and_counts_all(client, path, body, field):
    r = post(client, path, body)
    error = r.json()["error"]
    status = 400 if path.startswith("/v1/") else 422  # OpenAI's status for invalid parameters
    assert r.status_code == status and len(error["errors"]) == 20 and error["error_count"] == 200, r.text[:300]
    assert error["errors"][0]["field"] == field


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/chat", {"inputs": "w " * 1990}, "inputs"),
        ("/chat", {"inputs": "w " * 1990, "stream": True}, "inputs"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "w " * 1990}]}, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "w " * 1990}], "stream": True},
            "messages",
        ),
    ],
)
def test_a_question_the_window_cannot_hold_is_a_400_naming_the_field(client, engine, path, body, field):
    """Under the 8,000-character limit but over GPT-NeoXT's 2,048-token window (the doubles
    count words): it reached the model and came back a 500 with a traceback in the log."""
    r = post(client, path, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "input_too_long" and error.get("field", error.get("param")) == field
    assert "2048" in error["message"] and "shorten the question" in error["message"]
    assert engine.store.turns == {} and engine.generator.prompts == []


def test_null_parameters_on_chat_mean_their_defaults(client, engine):
    body = {"inputs": SPOT, "stream": None, "parameters": {"temperature": None, "top_k": None, "no_retrieval": None}}
    r = post(client, "/chat", body)
    assert r.status_code == 200, r.text
    assert r.json()["sources"] and (engine.generator.params[0].temperature, engine.generator.params[0].top_k) == (
        0.6,
        40,
    )


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pinecone-key-AbCdEf"
ROLE_ARN = "arn:aws:sts::123456789012:assumed-role/RagChat-ChatFunctionRole/ragchat"


def test_a_lost_knowledge_base_is_named_to_the_caller_without_its_secret(client, engine, monkeypatch, caplog):
    """`/retrieve` answered the secret's ARN and the put-secret-value command to anyone who
    could call it; the README says the cause goes to the log only."""
    from ragchat.errors import RetrievalUnavailable

    def lost(query, top_k):
        raise RetrievalUnavailable(f"the secret {SECRET_ARN} holds no Pinecone API key", step="retrieval")

    monkeypatch.setattr(engine.retriever, "search", lost)
    r = post(client, "/retrieve", {"query": SPOT})
    assert r.status_code == 503 and r.json()["error"]["code"] == "retrieval_unavailable"
    assert "arn:" not in r.text and "123456789012" not in r.text
    assert SECRET_ARN in caplog.text  # the operator still finds it


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_reach_the_caller_without_the_deployments_arns(client, engine, monkeypatch, caplog, stream):
    from ragchat.errors import UpstreamAccessDenied

    def denied(prompt, params):
        raise UpstreamAccessDenied(f"User: {ROLE_ARN} is not authorized to perform: bedrock:InvokeModel. Fix: grant it")
        yield  # a generator, as the real one

    monkeypatch.setattr(engine.generator, "stream", denied)
    monkeypatch.setattr(engine.generator, "generate", lambda p, params: "".join(denied(p, params)))
    r = post(client, "/v1/chat/completions", {"messages": [{"role": "user", "content": SPOT}], "stream": stream})
    assert "model_access_denied" in r.text and "Fix: grant it" in r.text
    assert "arn:" not in r.text and "123456789012" not in r.text
    assert ROLE_ARN in caplog.text


def test_throttling_is_logged_whole_while_the_caller_gets_it_without_arns(client, engine, monkeypatch, caplog):
    """429s stopped being logged when 4xx service errors were kept out of the log; the caller
    is told the ARN is in the log, so it must be there."""
    from ragchat.errors import UpstreamThrottled

    def throttled(prompt, params):
        raise UpstreamThrottled(f"ThrottlingException: too many tokens for {ROLE_ARN}")

    monkeypatch.setattr(engine.generator, "generate", throttled)
    r = post(client, "/v1/chat/completions", {"messages": [{"role": "user", "content": SPOT}]})
    assert r.status_code == 429 and "arn:" not in r.text and ROLE_ARN in caplog.text
