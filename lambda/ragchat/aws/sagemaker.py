"""Calls to SageMaker endpoints (`sagemaker-runtime`), with their failures mapped to the
service's errors so the HTTP app can answer 429/502/504 naming the step.

Throttling and 5xx answers are retried by botocore's `standard` retry mode (bounded
attempts, exponential backoff with jitter); what still fails after that surfaces here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

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


def map_client_error(exc: Exception, step: str, endpoint: str) -> ChatServiceError:
    """One botocore failure as the service error a client should see."""
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


class SageMakerRuntime:
    """JSON in, JSON (or a stream of lines) out, for one boto3 `sagemaker-runtime` client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def invoke(self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None) -> Any:
        kwargs = _request(endpoint, payload, custom_attributes)
        try:
            response = self.client.invoke_endpoint(**kwargs)
            body = response["Body"].read()
        except (ClientError, ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as exc:
            raise map_client_error(exc, step, endpoint) from None
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UpstreamModelError(f"endpoint {endpoint} answered with a body that is not JSON", step=step) from None

    def invoke_stream(
        self, endpoint: str, payload: Any, *, step: str, custom_attributes: str | None = None
    ) -> Iterator[bytes]:
        """The response as complete lines (without the newline), however the container
        split them across event-stream PayloadParts."""
        kwargs = _request(endpoint, payload, custom_attributes)
        try:
            response = self.client.invoke_endpoint_with_response_stream(**kwargs)
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
            raise map_client_error(exc, step, endpoint) from None


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
