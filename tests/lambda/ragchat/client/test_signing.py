"""SigV4 for Function URLs: what the CLI and the proxy send verifies with botocore's
signer for the same canonical request (the stand-in Function URL refuses anything else)."""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from ragchat.cli import main
from ragchat.client.http_client import ChatClient, ClientFailure
from ragchat.client.proxy import create_proxy_app
from ragchat.client.signing import SigV4Signer, function_url_region
from standins.function_url import TEST_CREDENTIALS

QUESTION = "Which instances can I use with Managed Spot Training?"


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/", "eu-west-1"),
        ("https://abc123.lambda-url.ap-southeast-2.on.aws", "ap-southeast-2"),
        ("http://127.0.0.1:8080", None),
        ("https://example.com/chat", None),
    ],
)
def test_function_url_region(url, region):
    assert function_url_region(url) == region


def test_signed_requests_verify_buffered_and_streamed(function_url):
    client = ChatClient(function_url.url, SigV4Signer(TEST_CREDENTIALS, "us-east-1"))

    answer = client.ask(QUESTION)
    events = list(client.stream(QUESTION, answer["session_id"]))

    assert answer["outputs"] == "Spot training works on all instances."
    assert events[-1].kind == "done" and events[-1].data["session_id"] == answer["session_id"]
    assert function_url.verified == [True, True]
    sent = function_url.requests[0].headers
    assert sent["x-amz-security-token"] == "session-token-123" and "x-amz-date" in sent


def test_a_wrong_secret_or_an_altered_body_does_not_verify(function_url):
    wrong = Credentials(TEST_CREDENTIALS.access_key, "not-the-secret", TEST_CREDENTIALS.token)
    with pytest.raises(ClientFailure, match="403"):
        ChatClient(function_url.url, SigV4Signer(wrong, "us-east-1")).ask(QUESTION)

    url = f"{function_url.url}/chat"
    headers = SigV4Signer(TEST_CREDENTIALS, "us-east-1").headers(
        "POST", url, b'{"inputs": "signed"}', {"Content-Type": "application/json"}
    )
    altered = httpx.post(url, content=b'{"inputs": "altered"}', headers=headers)
    assert altered.status_code == 403 and altered.json() == {"Message": "Forbidden"}
    assert function_url.verified == [False, False]


def test_the_cli_signs_with_the_standard_credential_chain(function_url, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TEST_CREDENTIALS.token)

    code = main(["ask", QUESTION, "--url", function_url.url, "--sign", "--region", "us-east-1", "--json"])

    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["sources"][0]["metadata"]["row"] == 90
    assert function_url.verified == [True]


def test_the_proxy_signs_for_the_browser_and_streams_back(function_url):
    proxy = create_proxy_app(function_url.url, SigV4Signer(TEST_CREDENTIALS, "us-east-1"))
    with TestClient(proxy) as browser:
        page = browser.get("/")
        streamed = browser.post("/chat", json={"inputs": QUESTION, "stream": True})

    assert page.status_code == 200 and "<title>RAG chat</title>" in page.text
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.count("event: token") >= 3 and "event: done" in streamed.text
    assert function_url.verified == [True, True]
