"""Calls to SageMaker endpoints (`sagemaker-runtime`), with their failures mapped to the
service's errors so the HTTP app can answer 429/502/504 naming the step.

Embedding and moderation calls are safe to repeat: botocore's `standard` retry mode retries
their throttling and 5xx answers (bounded attempts, backoff with jitter). A generation is
not: the generation client makes one attempt, and `StartRetry` repeats only a request that
SageMaker refused before the model started on it (throttled, or no connection made), and
only while another attempt still fits in the generation's time budget."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
)

from ..errors import ChatServiceError, UpstreamModelError, UpstreamNotReady, UpstreamThrottled, UpstreamTimeout

THROTTLING_CODES = {"ThrottlingException", "ModelNotReadyException", "TooManyRequestsException"}
DEFAULT_RETRY_AFTER_SECONDS = 2
NOT_READY_RETRY_AFTER_SECONDS = 60
# What the runtime answers when a request reaches an inference component that has no copy
# (scaled to zero): a ValidationError whose message says so. It also raises the
# NoCapacityInvocationFailures metric, which is what starts a copy (see stacks/scale_to_zero.py).
NO_CAPACITY = "no capacity"


def map_client_error(exc: Exception, step: str, endpoint: str, start_seconds: int = 600) -> ChatServiceError:
    """One botocore failure as the service error a client should see. `start_seconds`:
    about how long the model takes to start when it was scaled to zero."""
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return UpstreamTimeout(f"endpoint {endpoint} did not answer in time", step=step)
    if isinstance(exc, EndpointConnectionError):
        return UpstreamModelError(f"cannot reach the SageMaker runtime for endpoint {endpoint}", step=step)
    if isinstance(exc, EventStreamError):
        code = exc.response.get("Error", {}).get("Code", "stream error")
        return UpstreamModelError(f"endpoint {endpoint} failed while streaming ({code})", step=step)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = error.get("Message", "")
        if code in THROTTLING_CODES or status == 429:
            message = f"endpoint {endpoint} is throttling or not ready ({code}); retry later"
            return UpstreamThrottled(message, step=step, retry_after=_retry_after(exc.response))
        if NO_CAPACITY in message.lower():
            minutes = max(1, round(start_seconds / 60))
            message = (
                f"the model behind {endpoint} was scaled to zero while idle and is starting now; "
                f"it takes about {minutes} minutes: retry then"
            )
            return UpstreamNotReady(message, step=step, retry_after=NOT_READY_RETRY_AFTER_SECONDS)
        if code == "ValidationError" and "not found" in message.lower():
            # what the runtime answers while an endpoint is being created, updated or deleted
            state = "being created or updated, or it does not exist"
            message = f"endpoint {endpoint} is not in service yet ({state}): {message}"
            return UpstreamNotReady(message, step=step, retry_after=NOT_READY_RETRY_AFTER_SECONDS)
        if code == "ModelError":
            return UpstreamModelError(f"the model behind {endpoint} returned an error: {message}", step=step)
        return UpstreamModelError(f"endpoint {endpoint} failed ({code or status}): {message}", step=step)
    raise exc


def _retry_after(response: dict[str, Any]) -> int:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    raw = headers.get("retry-after", "")
    return int(raw) if raw.isdigit() else DEFAULT_RETRY_AFTER_SECONDS


T = TypeVar("T")
# Answers that mean SageMaker refused the request before any model saw it.
REFUSED_BEFORE_START = {"ThrottlingException", "TooManyRequestsException"}


def refused_before_start(exc: Exception) -> bool:
    """True only when the request certainly did not reach the model: safe to send again.
    A read timeout, a 5xx or a model error may come after the model began generating."""
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return code in REFUSED_BEFORE_START or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 429
    return False


@dataclass(frozen=True)
class StartRetry:
    """Retries of a generation request that never started, within a time budget.

    `attempt_seconds` is the longest one attempt can take (the client's connect plus read
    timeout); an attempt starts only if it can end before the budget does, so the whole
    call, retries and backoff included, never outlasts `budget_seconds`."""

    attempt_seconds: float
    budget_seconds: float
    attempts: int = 3
    base_delay: float = 0.5
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if self.attempt_seconds > self.budget_seconds:
            raise ValueError("one attempt must fit in the budget")

    def call(self, send: Callable[[], T]) -> T:
        deadline = self.clock() + self.budget_seconds
        for attempt in range(self.attempts):
            try:
                return send()
            except (ClientError, ConnectTimeoutError, EndpointConnectionError) as exc:
                if not refused_before_start(exc) or attempt == self.attempts - 1:
                    raise
                delay = random.uniform(0, self.base_delay * 2**attempt)
                if self.clock() + delay + self.attempt_seconds > deadline:
                    raise
                self.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


class SageMakerRuntime:
    """JSON in, JSON (or a stream of lines) out, for one boto3 `sagemaker-runtime` client."""

    def __init__(
        self,
        client: Any,
        inference_components: Mapping[str, str] | None = None,
        start_seconds: int = 600,
        retry: StartRetry | None = None,
    ) -> None:
        self.client = client
        self.inference_components = dict(inference_components or {})  # endpoint -> component
        self.start_seconds = start_seconds
        self.retry = retry  # None: one call (the client's own retry mode applies)

    def _send(self, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if self.retry is None:
            return call(**kwargs)
        return self.retry.call(lambda: call(**kwargs))

    def _request(self, endpoint: str, payload: Any, custom_attributes: str | None) -> dict[str, Any]:
        kwargs = _request(endpoint, payload, custom_attributes)
        if endpoint in self.inference_components:
            kwargs["InferenceComponentName"] = self.inference_components[endpoint]
        return kwargs

    def _error(self, exc: Exception, step: str, endpoint: str) -> ChatServiceError:
        return map_client_error(exc, step, endpoint, self.start_seconds)

    def invoke(self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None) -> Any:
        kwargs = self._request(endpoint, payload, custom_attributes)
        try:
            response = self._send(self.client.invoke_endpoint, kwargs)
            body = response["Body"].read()
        except (ClientError, ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as exc:
            raise self._error(exc, step, endpoint) from None
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UpstreamModelError(f"endpoint {endpoint} answered with a body that is not JSON", step=step) from None

    def invoke_stream(
        self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None
    ) -> Iterator[bytes]:
        """The response as complete lines (without the newline), however the container
        split them across event-stream PayloadParts."""
        kwargs = self._request(endpoint, payload, custom_attributes)
        try:
            # only the request is retried: once a byte of the stream arrived, never
            response = self._send(self.client.invoke_endpoint_with_response_stream, kwargs)
            pending = b""
            for event in response["Body"]:
                part = event.get("PayloadPart")
                if part is None:
                    continue
                pending += part["Bytes"]
                *lines, pending = pending.split(b"\n")
                yield from (line for line in lines if line.strip())
            if pending.strip():
                yield pending
        except (ClientError, ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError, EventStreamError) as exc:
            raise self._error(exc, step, endpoint) from None


def _request(endpoint: str, payload: Any, custom_attributes: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "EndpointName": endpoint,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(payload).encode(),
    }
    if custom_attributes:
        kwargs["CustomAttributes"] = custom_attributes
    return kwargs
