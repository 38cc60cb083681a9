"""The Lambda's request metrics: a client that hangs up is not a server error."""

from __future__ import annotations

import asyncio
import json

from ragchat.app import create_app
from ragchat.aws.observability import ObservabilityMiddleware


def run_request(app, body_parts: list[bytes]) -> list[dict]:
    """One POST /chat through `app`; the client sends `body_parts`, then hangs up.
    Returns what the app sent back."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/chat",
        "raw_path": b"/chat",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"), (b"content-length", b"999")],
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
    }
    incoming = [{"type": "http.request", "body": part, "more_body": True} for part in body_parts]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def emitted(capsys) -> dict[str, float]:
    """The metric totals of the EMF lines Powertools printed."""
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and "_aws" in line:
            record = json.loads(line)
            for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(record[metric["Name"]])
    return totals


def test_a_hang_up_during_upload_counts_as_a_client_error(engine, capsys):
    sent = run_request(ObservabilityMiddleware(create_app(lambda: engine)), [b'{"inputs": "Which'])

    assert sent[0]["status"] == 499
    metrics = emitted(capsys)
    assert "ServerErrors" not in metrics and metrics["ClientErrors"] == 1
    assert engine.store.turns == {}


def test_a_request_that_ends_with_no_answer_because_the_client_left_is_no_server_error(capsys):
    async def waits_for_the_body(scope, receive, send):
        while (await receive())["type"] != "http.disconnect":
            pass  # the client left; there is nobody to answer

    assert run_request(ObservabilityMiddleware(waits_for_the_body), [b"{"]) == []
    assert "ServerErrors" not in emitted(capsys)


def test_an_app_that_fails_before_answering_is_still_a_server_error(capsys):
    async def answers_nothing(scope, receive, send):
        return None

    run_request(ObservabilityMiddleware(answers_nothing), [])
    assert emitted(capsys)["ServerErrors"] == 1
