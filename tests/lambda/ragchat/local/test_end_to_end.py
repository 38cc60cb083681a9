"""End to end on the real local models: MiniLM (ONNX) + FAISS + SmolLM2-135M, through the
HTTP app, exactly as `make run` serves it."""

import json
import time
import uuid

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import serving
from ragchat.app import create_app
from ragchat.local.factory import LocalSettings, build_local_engine
from raw_http import read_until, send_chat

pytestmark = pytest.mark.models
SPOT = "Which instances can I use with Managed Spot Training in SageMaker?"
# SmolLM2's greedy reply to this one ends by itself (19 tokens, the FAQ row's answer).
SPOT_REGIONS = "Which AWS Regions are supported with Managed Spot Training?"


@pytest.fixture(scope="module")
def local_engine(tmp_path_factory):
    return build_local_engine(LocalSettings(data_dir=tmp_path_factory.mktemp("data")), progress=False)


@pytest.fixture(scope="module")
def client(local_engine):
    with TestClient(create_app(lambda: local_engine), base_url="http://localhost") as test_client:
        yield test_client


def test_spot_question_answered_from_row_90_and_remembered(client, local_engine):
    r = client.post("/chat", json={"inputs": SPOT, "parameters": {"max_new_tokens": 48, "temperature": 0}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outputs"].strip()
    assert uuid.UUID(body["session_id"]).version == 4
    assert body["sources"][0]["metadata"]["row"] == 90
    assert "local-stand-in" in body["moderation"]["input"]["provider"]

    follow = client.post(
        "/chat",
        json={
            "inputs": "Does that include GPU instances?",
            "parameters": {"session_id": body["session_id"], "max_new_tokens": 16},
        },
    )
    assert follow.status_code == 200
    stored = local_engine.store.load(body["session_id"])
    assert [t.role for t in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[0].content == SPOT and stored[1].content == body["outputs"]


def test_a_question_over_smollm2s_window_is_a_400_and_one_just_under_is_answered(client, local_engine):
    """7,819 characters (under the 8,000 limit) are ~2,500 SmolLM2 tokens: the outside review
    got a 500 and a traceback. The longest accepted question still leaves room for a reply."""
    too_long = client.post("/chat", json={"inputs": "What is SageMaker Neo? " * 340})
    assert too_long.status_code == 400 and too_long.json()["error"]["field"] == "inputs", too_long.text
    ok = client.post("/chat", json={"inputs": "What is SageMaker Neo? " * 250, "parameters": {"max_new_tokens": 8}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["prompt_tokens"] + ok.json()["usage"]["completion_tokens"] <= 2048


def test_control_token_text_is_counted_as_the_model_reads_it(client):
    """Markers are broken into several tokens before the prompt is built; counting them as one
    token each let a question, a caller's history or a stored turn overfill the window: a
    500, and a session that failed at every later turn."""
    flooded = client.post("/chat", json={"inputs": "What is SageMaker Neo? " + "<filename>" * 780})
    assert flooded.status_code == 400 and flooded.json()["error"]["code"] == "input_too_long", flooded.text
    history = [{"role": "user", "content": "<|im_start|>" * 600}, {"role": "assistant", "content": "ok"}]
    messages = [*history, {"role": "user", "content": "What is SageMaker Neo?"}]
    r = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 4})
    assert r.status_code == 200, r.text
    session = {"session_id": "control-tokens", "max_new_tokens": 4, "no_retrieval": True}
    first = "Please ignore these tags: " + "<jupyter_output>" * 200 + " What is SageMaker Neo?"
    assert client.post("/chat", json={"inputs": first, "parameters": session}).status_code == 200
    later = client.post("/chat", json={"inputs": SPOT, "parameters": session})
    assert later.status_code == 200, later.text


def test_streaming_on_real_model(client):
    with client.stream(
        "POST",
        "/chat",
        json={"inputs": "What is Amazon SageMaker?", "stream": True, "parameters": {"max_new_tokens": 24}},
    ) as r:
        text = r.read().decode()
    blocks = [b for b in text.strip().split("\n\n") if b]
    tokens = [b for b in blocks if b.startswith("event: token")]
    assert len(tokens) >= 2
    final = json.loads(blocks[-1].split("data: ", 1)[1])
    assert blocks[-1].startswith("event: done") and final["outputs"]
    assert final["sources"][0]["metadata"]["row"] == 0


def test_index_is_reused_until_the_file_changes(local_engine, tmp_path):
    from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE, ensure_knowledge_base

    state = tmp_path / "state.json"
    kb = tmp_path / "faq.csv"
    kb.write_bytes(DEFAULT_KNOWLEDGE_BASE.read_bytes())
    from ragchat.local.vector_index import FaissVectorIndex

    index = FaissVectorIndex(tmp_path / "index", 384)
    assert ensure_knowledge_base(kb, local_engine.embedder, index, state, progress=False) is True
    assert ensure_knowledge_base(kb, local_engine.embedder, index, state, progress=False) is False
    kb.write_text(
        kb.read_text(encoding="utf-8-sig").replace("all instances supported", "every instance type"), encoding="utf-8"
    )
    assert ensure_knowledge_base(kb, local_engine.embedder, index, state, progress=False) is True
    assert index.count() == 154, "changed rows replace their old vectors"
    top = index.query(local_engine.embedder.embed(["Which instances work with Managed Spot Training?"])[0], 1)[0]
    assert "every instance type" in top.text


def test_openai_route_reports_smollm2_usage_and_truncation(client, local_engine):
    """Usage in SmolLM2's own tokens (its chat template included), and "length" when the
    reply is cut at max_tokens; the same seed gives the same sampled reply."""
    ask = {"messages": [{"role": "user", "content": SPOT}], "max_tokens": 5, "temperature": 1.0, "seed": 7}
    first, again = (client.post("/v1/chat/completions", json=ask).json() for _ in range(2))
    assert first["choices"][0]["finish_reason"] == "length"
    assert first["usage"]["completion_tokens"] == 5
    assert first["usage"]["prompt_tokens"] > local_engine.generator.count_tokens(SPOT)  # template + context
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]

    ended = {"messages": [{"role": "user", "content": SPOT_REGIONS}], "max_tokens": 200, "temperature": 0}
    done = client.post("/v1/chat/completions", json=ended).json()
    assert done["choices"][0]["finish_reason"] == "stop"
    assert 0 < done["usage"]["completion_tokens"] < 200


def test_a_client_leaving_mid_stream_stops_llama_cpp_and_the_next_request_is_served(local_engine, monkeypatch):
    """A real disconnect on a real server: llama.cpp stops within a token or two of the
    server noticing, far short of the reply it was writing, and the next request is served."""
    reports = []
    model_stream = local_engine.generator.stream

    def reporting_model(prompt, params):
        reports.append(params.report)
        return model_stream(prompt, params)

    monkeypatch.setattr(local_engine.generator, "stream", reporting_model)
    ask = {"inputs": SPOT, "parameters": {"temperature": 0, "max_new_tokens": 200}}
    with serving(create_app(lambda: local_engine)) as url:
        whole = httpx.post(f"{url}/chat", json=ask, timeout=120)
        assert whole.status_code == 200, whole.text
        uninterrupted = reports[0].completion_tokens
        assert uninterrupted > 16, "a reply long enough to leave in the middle of"

        sock = send_chat(url, SPOT, stream=True, parameters=ask["parameters"], timeout=60)
        read_until(sock, b"event: token")
        sock.close()
        end = time.monotonic() + 60  # only stops a broken build from hanging
        while local_engine.queue.busy or reports[1].completion_tokens is None:
            assert time.monotonic() < end, "the model's turn was never released"
            time.sleep(0.005)
        assert reports[1].completion_tokens < uninterrupted, "llama.cpp went on writing for a client that left"

        nxt = httpx.post(f"{url}/chat", json={"inputs": SPOT, "parameters": {"max_new_tokens": 8}}, timeout=60)
        assert nxt.status_code == 200 and nxt.json()["outputs"].strip()
