"""Each upstream failure becomes a clear JSON answer; nothing is half-written."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aws_world import CHAT, EMBEDDING, MODERATION, REPLY, aws_app_client
from standins.sagemaker_runtime import LmiContainer

QUESTION = "Which instances can I use with Managed Spot Training?"


def test_throttled_endpoint_is_retried_then_answers(aws_client, aws_world):
    aws_world.sagemaker.fail(CHAT, 400, "ThrottlingException", "Rate exceeded", times=2)
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 200
    assert response.json()["outputs"] == REPLY
    assert len(aws_world.sagemaker.calls(CHAT)) == 3  # two throttled attempts, then success


def test_persistent_throttling_is_429_with_retry_after(aws_client, aws_world):
    aws_world.sagemaker.fail(CHAT, 400, "ThrottlingException", "Rate exceeded", times=10, retry_after=7)
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = response.json()["error"]
    assert error["code"] == "throttled" and error["step"] == "generation"
    assert len(aws_world.sagemaker.calls(CHAT)) == 3  # bounded: 3 attempts (StartRetry)
    assert aws_world.items(response.json().get("session_id", "none")) == []


def test_endpoint_scaled_to_zero_is_429(aws_client, aws_world):
    aws_world.sagemaker.fail(EMBEDDING, 429, "ModelNotReadyException", "Model is not ready", times=5)
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 429
    assert response.json()["error"]["step"] == "embedding"
    assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize(("status", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailable")])
def test_a_generation_failing_with_5xx_is_not_sent_again(aws_client, aws_world, status, code):
    """The model may have started generating: repeating it would pay for it twice (and a
    retry after a long failure could outlast the Lambda)."""
    aws_world.sagemaker.fail(CHAT, status, code, "try again", times=3)
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 502 and response.json()["error"]["step"] == "generation"
    assert len(aws_world.sagemaker.calls(CHAT)) == 1


def test_model_error_is_502_naming_the_step(aws_client, aws_world):
    aws_world.sagemaker.fail(CHAT, 424, "ModelError", "Received server error (500) from primary")
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error == {
        "code": "model_error",
        "message": f"the model behind {CHAT} returned an error: Received server error (500) from primary",
        "step": "generation",
    }
    assert len(aws_world.sagemaker.calls(CHAT)) == 1  # a model error is not retried


def test_moderation_endpoint_failure_is_502(aws_client, aws_world):
    aws_world.sagemaker.fail(MODERATION, 503, "ServiceUnavailable", "busy", times=3)
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 502
    assert response.json()["error"]["step"] == "moderation"


@pytest.mark.parametrize(
    "failed",
    [
        {"generated_text": "", "details": {"finish_reason": "error", "generated_tokens": None}},
        {"error": "CUDA out of memory"},
    ],
)
def test_a_moderation_generation_reported_as_failed_blocks_with_502_and_stores_nothing(aws_client, aws_world, failed):
    """A check that failed is not a verdict: the input was not checked, so it does not pass."""
    from standins.sagemaker_runtime import ModerationContainer

    aws_world.sagemaker.deploy(MODERATION, ModerationContainer(lambda text: "casual", failed_generation=failed))
    stored_before = aws_world.dynamodb.scan(TableName=aws_world.settings.table)["Count"]
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["step"] == "moderation" and MODERATION in error["message"]
    assert aws_world.sagemaker.calls(CHAT) == []
    assert aws_world.dynamodb.scan(TableName=aws_world.settings.table)["Count"] == stored_before


def test_timeout_is_504(aws_world):
    settings = dataclasses.replace(aws_world.settings, generation_timeout_seconds=0.6)  # read timeout 0.3 s
    aws_world.sagemaker.delays[CHAT] = 1.0
    with aws_app_client(settings) as client:
        response = client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 504
    assert len(aws_world.sagemaker.calls(CHAT)) == 1, "a generation that may have started is never sent again"
    assert response.json()["error"] == {
        "code": "timeout",
        "message": f"endpoint {CHAT} did not answer in time",
        "step": "generation",
    }


def test_stream_error_mid_reply_ends_the_stream_with_an_error_event(aws_client, aws_world):
    aws_world.sagemaker.deploy(CHAT, LmiContainer(REPLY, stream_error_after=3))
    with aws_client.stream("POST", "/chat", json={"inputs": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert "event: token" in text
    assert text.rstrip().split("\n\n")[-1].startswith("event: error")
    assert '"step": "generation"' in text and "ModelStreamError" in text


@pytest.mark.parametrize("status", [503, 429])
def test_pinecone_down_still_answers_without_context(aws_client, aws_world, status):
    aws_world.pinecone.fail(status, times=10, paths=("/query",))
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 200
    body = response.json()
    assert body["outputs"] == REPLY
    assert body["sources"] == []
    assert body["warnings"] and "retrieval unavailable" in body["warnings"][0]
    # retried with backoff, and bounded twice: the SDK makes at most 1 + 3 attempts, and the
    # engine stops waiting at its retrieval deadline (the SDK's jittered backoff decides how
    # many attempts fit before that; the reset stand-in gives each test a full retry budget and
    # the fixtures wait at teardown for lookups that outlived the deadline, so none leaks into the next test)
    assert 2 <= len(aws_world.pinecone.data_requests("/query")) <= 4
    assert body["timings_ms"]["retrieval"] < 5500
    prompt = aws_world.sagemaker.calls(CHAT)[0].json()["inputs"]
    assert "CONTEXT" not in prompt


def test_wrong_pinecone_key_still_answers_and_rereads_the_secret(aws_client, aws_world):
    aws_world.secrets.put_secret_value(SecretId=aws_world.settings.pinecone_secret_arn, SecretString="wrong-key")
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 200
    assert response.json()["sources"] == []
    assert "retrieval unavailable" in response.json()["warnings"][0]


def test_an_empty_secret_is_explained_to_the_operator_not_the_caller(aws_client, aws_world, caplog):
    arn = aws_world.settings.pinecone_secret_arn
    aws_world.secrets.put_secret_value(SecretId=arn, SecretString="   ")
    response = aws_client.post("/chat", json={"inputs": QUESTION})

    assert response.status_code == 200 and response.json()["outputs"] == REPLY
    assert response.json()["warnings"] == ["retrieval unavailable, answered without retrieved context"]
    assert arn not in response.text and "secretsmanager" not in response.text
    operator_log = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(arn in line and "put-secret-value" in line for line in operator_log)


def test_dynamodb_failure_is_503_and_nothing_half_written(aws_client, aws_world):
    first = aws_client.post("/chat", json={"inputs": QUESTION}).json()
    session = first["session_id"]
    aws_world.dynamodb.delete_table(TableName=aws_world.settings.table)
    response = aws_client.post("/chat", json={"inputs": "again", "parameters": {"session_id": session}})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert response.json()["error"]["step"] == "history"


def test_store_write_failure_is_503_with_nothing_stored(aws_world):
    from ragchat.aws.dynamodb_store import DynamoDbConversationStore
    from ragchat.errors import StoreUnavailable
    from ragchat.interfaces import Turn

    store = DynamoDbConversationStore(aws_world.dynamodb, aws_world.settings.table)
    too_big = "x" * 500_000  # over DynamoDB's 400 KB item limit: the transaction is refused
    with pytest.raises(StoreUnavailable) as caught:
        store.append("s-1", [Turn("user", "hello"), Turn("assistant", too_big)])
    assert caught.value.status == 503 and caught.value.step == "store"
    assert aws_world.items("s-1") == []  # the user turn did not land alone


def test_expired_turns_are_not_read_back_before_ttl_deletes_them(aws_world):
    """DynamoDB's TTL deletes an expired item within days, not at once, and a query returns
    it until then: an expired session could be resumed."""
    from ragchat.aws.dynamodb_store import DynamoDbConversationStore
    from ragchat.interfaces import Turn

    expired = DynamoDbConversationStore(aws_world.dynamodb, aws_world.settings.table, ttl_days=-1)
    expired.append("old", [Turn("user", "stale question"), Turn("assistant", "stale answer")])
    current = DynamoDbConversationStore(aws_world.dynamodb, aws_world.settings.table)
    current.append("old", [Turn("user", "new question"), Turn("assistant", "new answer")])

    assert len(aws_world.items("old", owner="")) == 4  # still stored, as before TTL's sweep
    assert [t.content for t in current.load("old")] == ["new question", "new answer"]


def test_twenty_concurrent_turns_on_one_session_all_land(aws_world):
    from ragchat.aws.dynamodb_store import DynamoDbConversationStore
    from ragchat.interfaces import Turn

    store = DynamoDbConversationStore(aws_world.dynamodb, aws_world.settings.table)
    start = threading.Barrier(20)

    def turn(n: int) -> None:
        start.wait()
        store.append("shared", [Turn("user", f"question {n}"), Turn("assistant", f"answer {n}")])

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(turn, range(20)))

    items = aws_world.items("shared", owner="")
    assert len(items) == 40
    contents = {i["content"]["S"] for i in items}
    assert contents == {f"question {n}" for n in range(20)} | {f"answer {n}" for n in range(20)}
    by_turn = sorted(items, key=lambda i: int(i["turn"]["N"]))
    for user, bot in zip(by_turn[::2], by_turn[1::2], strict=True):  # each pair stays together
        assert user["role"]["S"] == "user" and bot["role"]["S"] == "assistant"
        assert user["content"]["S"].split()[-1] == bot["content"]["S"].split()[-1]


def test_twenty_concurrent_requests_on_one_session_through_the_app(aws_client, aws_world):
    session = "concurrent-session"

    def ask(n: int) -> int:
        body = {"inputs": f"question {n}", "parameters": {"session_id": session}}
        return aws_client.post("/chat", json=body).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(ask, range(20)))
    assert statuses == [200] * 20
    items = aws_world.items(session)
    assert len(items) == 40
    assert {i["content"]["S"] for i in items if i["role"]["S"] == "user"} == {f"question {n}" for n in range(20)}


def test_endpoint_not_in_service_is_503_endpoint_not_ready(aws_client, aws_world):
    """What the runtime answers while an endpoint is being created or updated."""
    message = f"Endpoint {CHAT} of account 123456789012 not found."
    aws_world.sagemaker.fail(CHAT, 400, "ValidationError", message, times=10)
    response = aws_client.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 503 and response.headers["retry-after"] == "60"
    error = response.json()["error"]
    assert error["code"] == "endpoint_not_ready" and error["step"] == "generation"
    assert "not in service yet" in error["message"]


def test_a_cosine_index_from_before_hybrid_search_answers_without_context_until_migrated(aws_world):
    """Pinecone refuses a sparse-dense query on a cosine index: the Lambda answers without
    context and says so; with RAGCHAT_LEXICAL_WEIGHT=0 it ranks dense-only meanwhile."""
    from dataclasses import replace

    aws_world.pinecone.add_index(aws_world.settings.pinecone_index, metric="cosine")
    with aws_app_client(aws_world.settings) as client:
        body = client.post("/chat", json={"inputs": QUESTION}).json()
    assert body["sources"] == [] and "retrieval unavailable" in body["warnings"][0]
    dense_only = replace(aws_world.settings, lexical_weight=0.0)
    with aws_app_client(dense_only) as client:
        body = client.post("/chat", json={"inputs": QUESTION}).json()
    assert body["warnings"] == [] and body["sources"][0]["id"] == "row-90"
    assert "sparseVector" not in aws_world.pinecone.data_requests("/query")[-1].json()
