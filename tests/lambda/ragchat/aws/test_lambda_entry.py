"""Function URL events through the real Lambda entry point: `lambda/run.sh` starts the app
with uvicorn, as the function's handler does, and the Web Adapter's documented conversion
carries events in and results (buffered or streamed) out."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from aws_world import BEDROCK_MODEL, CHAT, REPLY
from conftest import PROJECT_ROOT, free_port
from standins.bedrock_runtime import ConverseModel
from standins.sagemaker_runtime import LmiContainer
from standins.web_adapter import WebAdapter, function_url_event

QUESTION = "Which instances can I use with Managed Spot Training?"
CONTEXT = {
    "request_id": "8f7e6d5c-0000-4b3a-9c2d-1e0f00000001",
    "deadline": 1795341900000,
    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:ragchat-chat",
    "xray_trace_id": "Root=1-6740a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
}


class LambdaProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        full_env = {**os.environ, **env, "PORT": str(self.port), "AWS_LAMBDA_FUNCTION_NAME": "ragchat-chat"}
        full_env["PATH"] = f"{PROJECT_ROOT / '.venv' / 'bin'}:{full_env['PATH']}"
        self.process = subprocess.Popen(
            ["bash", str(PROJECT_ROOT / "lambda" / "run.sh")],
            cwd=PROJECT_ROOT / "lambda",  # the function's code root, as /var/task
            env=full_env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> bool:
        """The adapter's readiness check: GET /health until it answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                time.sleep(0.1)
        return False

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        return self.log.read_text()


@pytest.fixture
def function(aws_world, tmp_path) -> Iterator[tuple[WebAdapter, LambdaProcess]]:
    process = LambdaProcess(aws_world.lambda_env(), tmp_path / "function.log")
    assert process.wait_ready(), process.stop()
    adapter = WebAdapter(process.url)
    yield adapter, process
    adapter.close()
    process.stop()


def test_buffered_function_url_event(function, aws_world):
    adapter, process = function
    result = adapter.invoke(function_url_event("POST", "/chat", {"inputs": QUESTION}), CONTEXT)

    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    body = json.loads(result["body"])
    assert body["outputs"] == REPLY
    assert body["sources"][0]["id"] == "row-90"
    assert len(aws_world.items(body["session_id"])) == 2

    logs = [json.loads(line) for line in process.stop().splitlines() if line.startswith("{")]
    turn = next(line for line in logs if line.get("message") == "chat turn")
    assert turn["request_id"] == CONTEXT["request_id"]
    assert turn["xray_trace_id"] == "1-6740a1b2-0123456789abcdef01234567"
    # the trace continues into the AWS calls of the turn
    assert aws_world.sagemaker.calls(CHAT)[0].headers["x-amzn-trace-id"] == CONTEXT["xray_trace_id"]
    assert turn["level"] == "INFO" and turn["service"] == "ragchat"
    metrics = [line for line in logs if "_aws" in line]
    names = {m["Name"] for line in metrics for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"GenerationLatency", "RetrievalLatency", "TurnLatency", "Requests"} <= names


def test_streaming_function_url_event_streams_tokens_as_they_come(function, aws_world):
    adapter, _ = function
    aws_world.sagemaker.deploy(CHAT, LmiContainer(REPLY, token_delay=0.08))
    event = function_url_event("POST", "/chat", {"inputs": QUESTION, "stream": True})

    result = adapter.invoke_streaming(event, CONTEXT)

    assert result.prelude["statusCode"] == 200
    assert result.prelude["headers"]["content-type"].startswith("text/event-stream")
    text = result.body.decode()
    assert text.count("event: token") > 5
    assert text.rstrip().split("\n\n")[-1].startswith("event: done")
    # the first token left the function long before the last one was generated
    assert len(result.chunk_times) > 5
    assert result.chunk_times[-1] - result.chunk_times[0] > 0.5


@pytest.fixture
def bedrock_function(aws_world, tmp_path) -> Iterator[WebAdapter]:
    """The function as the stack configures it for `chat_model=bedrock`: no chat endpoint."""
    aws_world.settings = replace(
        aws_world.settings, model_profile="bedrock", chat_endpoint="", bedrock_model_id=BEDROCK_MODEL
    )
    env = {k: v for k, v in aws_world.lambda_env().items() if k != "RAGCHAT_CHAT_ENDPOINT"}
    process = LambdaProcess(env, tmp_path / "function.log")
    assert process.wait_ready(), process.stop()
    adapter = WebAdapter(process.url)
    yield adapter
    adapter.close()
    process.stop()


def test_bedrock_function_answers_a_buffered_event(bedrock_function, aws_world):
    aws_world.bedrock.serve(BEDROCK_MODEL, ConverseModel(REPLY))
    result = bedrock_function.invoke(function_url_event("POST", "/chat", {"inputs": QUESTION}), CONTEXT)

    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["outputs"] == REPLY and body["sources"][0]["id"] == "row-90"
    [call] = aws_world.bedrock.calls(BEDROCK_MODEL)
    assert call.extra["streaming"] is False
    assert call.headers["x-amzn-trace-id"] == CONTEXT["xray_trace_id"]  # the trace continues into Bedrock
    assert call.headers["authorization"].startswith("AWS4-HMAC-SHA256")  # signed, service `bedrock`
    assert "/bedrock/aws4_request" in call.headers["authorization"]
    assert aws_world.sagemaker.calls(CHAT) == []


def test_bedrock_function_streams_tokens_before_the_model_has_finished(bedrock_function, aws_world):
    """The model holds after three pieces until the caller has seen a token: if the function
    buffered the reply, no token could arrive and the model would be held to its limit."""
    model = ConverseModel(REPLY, hold_after=3)
    aws_world.bedrock.serve(BEDROCK_MODEL, model)
    received = bytearray()

    def on_chunk(chunk: bytes) -> None:
        received.extend(chunk)
        if b"event: token" in received:
            model.release.set()

    event = function_url_event("POST", "/chat", {"inputs": QUESTION, "stream": True})
    result = bedrock_function.invoke_streaming(event, CONTEXT, on_chunk=on_chunk)

    assert model.release.is_set() and not model.held_too_long
    assert result.prelude["statusCode"] == 200
    text = result.body.decode()
    tokens = [json.loads(b.split("data: ", 1)[1])["text"] for b in text.split("\n\n") if b.startswith("event: token")]
    assert "".join(tokens) == REPLY
    assert text.rstrip().split("\n\n")[-1].startswith("event: done")
    assert aws_world.bedrock.calls(BEDROCK_MODEL)[0].extra["streaming"] is True


def test_base64_body_and_bad_input_through_the_adapter(function):
    adapter, _ = function
    ok = adapter.invoke(function_url_event("POST", "/retrieve", {"query": QUESTION}, base64_body=True), CONTEXT)
    bad = adapter.invoke(function_url_event("POST", "/chat", "{not json"), CONTEXT)
    missing = adapter.invoke(function_url_event("GET", "/nope"), CONTEXT)

    assert ok["statusCode"] == 200 and json.loads(ok["body"])["matches"][0]["id"] == "row-90"
    assert bad["statusCode"] == 400
    assert json.loads(bad["body"])["error"]["field"] == "body"
    assert missing["statusCode"] == 404 and json.loads(missing["body"])["error"]["code"] == "not_found"


def test_the_function_refuses_form_posts_and_other_hosts(function, aws_world):
    adapter, _ = function
    body = {"inputs": QUESTION, "parameters": {"session_id": "victim"}}
    form = adapter.invoke(
        function_url_event("POST", "/chat", body, headers={"content-type": "application/x-www-form-urlencoded"}),
        CONTEXT,
    )
    other_host = adapter.invoke(function_url_event("POST", "/chat", body, headers={"host": "evil.example"}), CONTEXT)

    assert form["statusCode"] == 415 and json.loads(form["body"])["error"]["field"] == "content-type"
    assert other_host["statusCode"] == 403 and json.loads(other_host["body"])["error"]["field"] == "host"
    assert aws_world.items("victim") == []


def test_sessions_belong_to_the_iam_caller_the_adapter_passes_on(function, aws_world):
    adapter, _ = function
    alice, mallory = "arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/mallory"
    first = adapter.invoke(function_url_event("POST", "/chat", {"inputs": QUESTION}, caller_arn=alice), CONTEXT)
    session = json.loads(first["body"])["session_id"]
    # Mallory also sends a request-context header of her own: the adapter replaces it
    forged = json.dumps({"authorizer": {"iam": {"userArn": alice}}})
    event = function_url_event(
        "POST",
        "/chat",
        {"inputs": "And then?", "parameters": {"session_id": session}},
        caller_arn=mallory,
        headers={"x-amzn-request-context": forged},
    )
    assert adapter.invoke(event, CONTEXT)["statusCode"] == 200

    assert len(aws_world.items(session, owner=alice)) == 2
    assert [i["content"]["S"] for i in aws_world.items(session, owner=mallory)][0] == "And then?"


def test_misconfigured_function_stops_at_startup_naming_the_variable(aws_world, tmp_path):
    env = aws_world.lambda_env()
    del env["RAGCHAT_TABLE"]
    process = LambdaProcess(env, tmp_path / "function.log")
    assert process.wait_ready(timeout=15) is False
    output = process.stop()
    assert "missing environment variable(s): RAGCHAT_TABLE" in output
    assert "Traceback" not in output.split("configuration error", 1)[0]


def test_a_parked_function_answers_503_parked_naming_how_to_unpark(tmp_path):
    """The environment the parked stack gives the function (no endpoint at all), through the
    real entry point: the API answers `parked`, the readiness check still passes."""
    from cdk_helpers import resources, synth

    template, _ = synth(parked=True)
    assert resources(template, "AWS::SageMaker::Endpoint") == {}
    (function,) = resources(template, "AWS::Lambda::Function").values()
    env = {
        k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in function["Environment"]["Variables"].items()
    }
    assert not [k for k in env if k.endswith("_ENDPOINT")]
    process = LambdaProcess(env, tmp_path / "function.log")
    assert process.wait_ready(), process.stop()
    adapter = WebAdapter(process.url)
    try:
        for path, body in (("/chat", {"inputs": QUESTION}), ("/v1/chat/completions", {"messages": []})):
            result = adapter.invoke(function_url_event("POST", path, body), CONTEXT)
            error = json.loads(result["body"])["error"]
            assert result["statusCode"] == 503 and error["code"] == "parked", result
            assert "-c ragchat:parked=false" in error["message"]
        health = adapter.invoke(function_url_event("GET", "/health"), CONTEXT)
        assert health["statusCode"] == 200 and json.loads(health["body"]) == {"status": "parked"}
    finally:
        adapter.close()
        process.stop()
