"""SigV4 for Function URLs: what the CLI and the proxy send verifies with botocore's
signer for the same canonical request (the stand-in Function URL refuses anything else)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from ragchat.app import chat_page
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


PROXY_PORT = 8081  # the Host the browser sends; TestClient needs no listening socket


@pytest.fixture
def browser(function_url) -> Iterator[TestClient]:
    """A browser on the proxy's own page, http://127.0.0.1:8081/."""
    proxy = create_proxy_app(function_url.url, SigV4Signer(TEST_CREDENTIALS, "us-east-1"), port=PROXY_PORT)
    with TestClient(proxy, base_url=f"http://127.0.0.1:{PROXY_PORT}") as client:
        yield client


def test_the_proxy_signs_for_the_browser_and_streams_back(function_url, browser):
    page = browser.get("/")
    streamed = browser.post(
        "/chat", json={"inputs": QUESTION, "stream": True}, headers={"Origin": f"http://127.0.0.1:{PROXY_PORT}"}
    )

    assert page.status_code == 200 and "<title>RAG chat</title>" in page.text
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.count("event: token") >= 3 and "event: done" in streamed.text
    assert function_url.verified == [True, True]


@pytest.mark.parametrize(
    ("headers", "status", "field"),
    [
        ({"Host": "evil.example"}, 403, "host"),  # a foreign Host
        ({"Host": f"rebound.attacker.example:{PROXY_PORT}"}, 403, "host"),  # DNS rebinding: right port, their name
        ({"Host": "127.0.0.1:9999"}, 403, "host"),  # not the proxy's port
        ({"Origin": "https://evil.example"}, 403, "origin"),  # a foreign page's fetch
        ({"Origin": "null"}, 403, "origin"),  # a sandboxed frame or a file:// page
        # the cross-site form post: a "simple" request, no preflight
        ({"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403, "origin"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "content-type"),
        ({"Content-Type": "text/plain"}, 415, "content-type"),  # what a no-cors fetch can send
    ],
)
def test_the_proxy_signs_nothing_for_other_sites(function_url, browser, headers, status, field):
    body = json.dumps({"inputs": QUESTION, "parameters": {"session_id": "victim"}})
    response = browser.post("/chat", content=body, headers={"Content-Type": "application/json", **headers})

    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert function_url.requests == []  # nothing was signed and sent upstream


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/retrieve", 404),
        ("POST", "/v1/chat/completions", 404),
        ("GET", "/health", 404),
        ("GET", "/chat", 405),
        ("DELETE", "/chat", 405),
        ("POST", "/", 405),
    ],
)
def test_the_proxy_forwards_only_the_page_and_chat(function_url, browser, method, path, status):
    response = browser.request(method, path, json={"query": QUESTION})
    assert response.status_code == status and response.json()["error"]["field"] == "path"
    assert function_url.requests == []


def test_the_page_keeps_its_security_headers_through_the_proxy(function_url, browser):
    """The proxy passed only content-type on: through it, the page that signs with the user's
    credentials lost its CSP (frame-ancestors 'none'), nosniff and Referrer-Policy."""
    page = browser.get("/")
    assert page.status_code == 200
    _, served = chat_page()
    for name, value in served.items():
        assert page.headers[name] == value


def test_the_proxy_drops_the_query_and_limits_the_body(function_url, browser):
    ok = browser.post("/chat?Action=Anything&X-Amz-Target=x", json={"inputs": QUESTION})
    too_big = browser.post("/chat", json={"inputs": "x" * (300 * 1024)})

    assert ok.status_code == 200 and [r.path for r in function_url.requests] == ["/chat"]
    assert too_big.status_code == 413 and too_big.json()["error"]["field"] == "body"
    assert len(function_url.requests) == 1
