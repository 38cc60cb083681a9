"""Fair, bounded, cancellable generation through a real server and real sockets: the
model answers one request at a time in arrival order, a full line answers 503 with
Retry-After, a late request 504, and a client that leaves (queued, before its first
token, mid-stream, or waiting for a buffered answer) frees the model for the next one.

Synchronisation is by events the test doubles set and the queue's own counters; the
timeouts below only stop a broken build from hanging, they are not what is asserted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from conftest import make_engine, serving
from doubles import TickingGenerator
from ragchat.app import create_app
from ragchat.engine import ChatEngine, EngineSettings
from raw_http import WAIT, read_all, read_until, send_chat


def wait_for(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def settings(**overrides) -> EngineSettings:
    return EngineSettings(buffered_generation=False, **overrides)


@contextmanager
def server(**overrides) -> Iterator[tuple[str, ChatEngine, TickingGenerator]]:
    model = TickingGenerator()
    engine = make_engine(generator=model, settings=settings(**overrides))
    with serving(create_app(lambda: engine)) as url:
        try:
            yield url, engine, model
        finally:
            engine.shutdown()  # cancels whatever a test left running, so the server can stop


def served_after(url: str, model: TickingGenerator, question: str = "next one") -> dict:
    """The next request gets a whole answer (the model is free again)."""
    model.finish.set()
    reply = httpx.post(f"{url}/chat", json={"inputs": question}, timeout=WAIT)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"].startswith("tok")
    return reply.json()


def test_a_client_leaving_mid_stream_frees_the_model():
    with server() as (url, engine, model):
        sock = send_chat(url, "alpha", stream=True)
        read_until(sock, b"event: token")
        assert engine.queue.busy
        sock.close()
        assert model.runs[0].closed.wait(WAIT), "the model kept generating for a client that left"
        wait_for(lambda: not engine.queue.busy, "the model's turn to be released")
        served_after(url, model)
        assert len(model.runs) == 2


def test_a_client_leaving_before_its_first_token_frees_the_model():
    """Prefill is not interrupted, but the first token after it is the last."""
    with server() as (url, engine, model):
        model.prefill.clear()
        sock = send_chat(url, "alpha", stream=True)
        wait_for(lambda: model.runs and model.runs[0].started.is_set(), "the model to start")
        sock.close()
        model.prefill.set()
        assert model.runs[0].closed.wait(WAIT)
        wait_for(lambda: not engine.queue.busy, "the model's turn to be released")
        served_after(url, model)


def test_a_client_leaving_the_queue_is_never_generated_for():
    with server() as (url, engine, model):
        first = send_chat(url, "alpha", stream=True)
        read_until(first, b"event: token")
        queued_stream = send_chat(url, "bravo", stream=True)
        wait_for(lambda: engine.queue.waiting == 1, "bravo to queue")
        queued_buffered = send_chat(url, "charlie", stream=False)
        wait_for(lambda: engine.queue.waiting == 2, "charlie to queue")
        queued_stream.close()
        queued_buffered.close()
        wait_for(lambda: engine.queue.waiting == 0, "both to leave the line")
        assert engine.queue.busy, "alpha still has the model"
        model.finish.set()
        assert b"event: done" in read_all(first)
        served_after(url, model, "delta")
        assert model.order(["alpha", "bravo", "charlie", "delta"]) == ["alpha", "delta"]


def test_a_client_leaving_a_buffered_answer_frees_the_model():
    with server() as (url, engine, model):
        sock = send_chat(url, "alpha", stream=False)
        wait_for(lambda: model.runs and model.runs[0].first_token.is_set(), "generation to start")
        sock.close()
        assert model.runs[0].closed.wait(WAIT)
        wait_for(lambda: not engine.queue.busy, "the model's turn to be released")
        served_after(url, model)


def test_the_model_serves_requests_in_arrival_order():
    labels = ["alpha", "bravo", "charlie", "delta", "echo"]
    with server(queue_limit=8) as (url, engine, model):
        first = send_chat(url, labels[0], stream=True)
        read_until(first, b"event: token")
        waiting = []
        for position, label in enumerate(labels[1:], start=1):
            waiting.append(send_chat(url, label, stream=False))
            wait_for(lambda n=position: engine.queue.waiting == n, f"{label} to queue")
        model.finish.set()
        assert b"event: done" in read_all(first)
        for sock in waiting:
            assert read_until(sock, b"\r\n").startswith(b"HTTP/1.1 200")
            sock.close()
        assert model.order(labels) == labels


def test_a_full_line_answers_503_with_retry_after():
    with server(queue_limit=1) as (url, engine, model):
        first = send_chat(url, "alpha", stream=True)
        read_until(first, b"event: token")
        second = send_chat(url, "bravo", stream=True)
        wait_for(lambda: engine.queue.waiting == 1, "bravo to queue")
        refused = httpx.post(f"{url}/chat", json={"inputs": "charlie"}, timeout=WAIT)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "busy"
        assert int(refused.headers["Retry-After"]) >= 1
        model.finish.set()
        assert b"event: done" in read_all(first)
        assert b"event: done" in read_all(second)
        assert model.order(["alpha", "bravo", "charlie"]) == ["alpha", "bravo"]


def test_a_request_past_its_deadline_answers_504():
    with server(deadline_seconds=0.5) as (url, engine, model):
        refused = httpx.post(f"{url}/chat", json={"inputs": "alpha"}, timeout=WAIT)
        assert refused.status_code == 504, refused.text
        assert refused.json()["error"]["code"] == "deadline_exceeded"
        assert model.runs[0].closed.wait(WAIT)
        wait_for(lambda: not engine.queue.busy, "the model's turn to be released")


def test_an_openai_client_does_not_retry_a_request_that_missed_its_deadline(caplog):
    """The SDK retries a 504 twice by default: one call past its deadline ran three times,
    holding the model 3x as long; `x-should-retry: false` tells it a retry cannot succeed.
    The log calls it a limit of this service, not an upstream failure."""
    import openai

    with server(deadline_seconds=0.5) as (url, engine, model):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")  # default max_retries=2
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model="any", messages=[{"role": "user", "content": "alpha"}])
        assert raised.value.status_code == 504 and raised.value.response.headers["x-should-retry"] == "false"
        assert model.runs[0].closed.wait(WAIT)
        assert len(model.runs) == 1
    assert "not served (deadline_exceeded)" in caplog.text and "upstream failure" not in caplog.text


def test_a_request_that_cannot_get_the_model_before_its_deadline_answers_504():
    with server(deadline_seconds=0.5) as (url, engine, model):
        model.prefill.clear()  # the first request holds the model
        first = send_chat(url, "alpha", stream=True)
        wait_for(lambda: engine.queue.busy, "alpha to hold the model")
        late = httpx.post(f"{url}/chat", json={"inputs": "bravo"}, timeout=WAIT)
        assert late.status_code == 504
        assert late.json()["error"]["code"] == "deadline_exceeded"
        assert engine.queue.waiting == 0
        model.prefill.set()
        first.close()
        assert model.order(["alpha", "bravo"]) == ["alpha"]


@pytest.mark.parametrize("stream", [True, False])
def test_shutdown_cancels_running_and_queued_requests(stream: bool):
    with server() as (url, engine, model):
        running = send_chat(url, "alpha", stream=True)
        read_until(running, b"event: token")
        queued = send_chat(url, "bravo", stream=stream)
        wait_for(lambda: engine.queue.waiting == 1, "bravo to queue")
        engine.shutdown()
        assert b"cancelled" in read_all(running)
        assert model.runs[0].closed.is_set()
        answer = read_all(queued)
        assert b"503" in answer.split(b"\r\n")[0] and b"cancelled" in answer
        assert len(model.runs) == 1
