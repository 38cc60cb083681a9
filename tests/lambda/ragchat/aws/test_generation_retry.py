"""StartRetry: a generation request is sent again only when SageMaker refused it before
the model started, and never past the generation's time budget, which the stack sets
inside the Lambda timeout."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from ragchat.aws.factory import generation_timeouts, start_retry
from ragchat.aws.sagemaker import StartRetry, refused_before_start
from ragchat.aws.settings import AwsSettings


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def failing(errors: list[Exception], clock: FakeTime, seconds_each: float):
    calls = []

    def send():
        calls.append(clock.now)
        clock.now += seconds_each
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "reply"

    return send, calls


def test_only_refusals_before_the_model_started_are_retried():
    assert refused_before_start(client_error("ThrottlingException", 400))
    assert refused_before_start(client_error("Whatever", 429))
    assert refused_before_start(ConnectTimeoutError(endpoint_url="http://x"))
    assert not refused_before_start(ReadTimeoutError(endpoint_url="http://x"))
    assert not refused_before_start(client_error("InternalFailure", 500))
    assert not refused_before_start(client_error("ModelError", 424))


def test_throttled_twice_then_answered():
    clock = FakeTime()
    retry = StartRetry(attempt_seconds=10, budget_seconds=100, clock=clock.clock, sleep=clock.sleep)
    send, calls = failing([client_error("ThrottlingException", 400)] * 2, clock, 0.01)
    assert retry.call(send) == "reply" and len(calls) == 3


@pytest.mark.parametrize("error", [ReadTimeoutError(endpoint_url="http://x"), client_error("InternalFailure", 500)])
def test_a_possibly_started_generation_is_sent_once(error):
    clock = FakeTime()
    retry = StartRetry(attempt_seconds=10, budget_seconds=100, clock=clock.clock, sleep=clock.sleep)
    send, calls = failing([error], clock, 5)
    with pytest.raises(type(error)):
        retry.call(send)
    assert len(calls) == 1


def test_no_attempt_starts_that_could_end_after_the_budget():
    clock = FakeTime()
    retry = StartRetry(attempt_seconds=100, budget_seconds=150, clock=clock.clock, sleep=clock.sleep)
    send, calls = failing([client_error("ThrottlingException", 400)] * 3, clock, 60)  # a slow refusal
    with pytest.raises(ClientError):
        retry.call(send)
    assert len(calls) == 1, "60 s gone: a 100 s attempt would end past 150 s"


@pytest.mark.parametrize("lambda_timeout", [30, 31, 60, 61, 90, 300, 600, 900])
def test_the_worst_case_fits_in_the_lambda_timeout(lambda_timeout):
    """Every refused attempt as slow as an attempt can be (connect + read timeout), the
    backoff as long as it draws: the generation still ends inside its budget, which the
    stack sets below the Lambda timeout."""
    from stacks.config import DeploymentConfig

    budget = DeploymentConfig(lambda_timeout_seconds=lambda_timeout).generation_timeout_seconds
    assert 0 < budget < lambda_timeout
    settings = AwsSettings(model_profile="flan-t5", chat_endpoint="c", embedding_endpoint="e", table="t",
                           pinecone_secret_arn="s", pinecone_index="i", moderation="off",
                           generation_timeout_seconds=float(budget))  # fmt: skip
    retry = start_retry(settings)
    connect, read = generation_timeouts(budget)
    assert retry.attempt_seconds == connect + read < budget
    clock = FakeTime()
    retry = StartRetry(retry.attempt_seconds, retry.budget_seconds, base_delay=retry.base_delay,
                       clock=clock.clock, sleep=clock.sleep)  # fmt: skip
    send, calls = failing([client_error("ThrottlingException", 400)] * 5, clock, retry.attempt_seconds)
    with pytest.raises(ClientError):
        retry.call(send)
    assert clock.now <= budget, (calls, clock.now)
