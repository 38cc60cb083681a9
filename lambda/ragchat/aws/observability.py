"""Structured logs and metrics for the Lambda, with Powertools for AWS Lambda.

Behind the Lambda Web Adapter the app sees HTTP requests, not Lambda events, so the
invocation's request id and X-Ray trace id come from the headers the adapter adds
(`x-amzn-lambda-context`, `x-amzn-request-context`, `x-amzn-trace-id`). Every log line
carries them, and the trace header goes on to the AWS calls of the turn. Metrics go out
in CloudWatch embedded metric format: one latency metric per step of each turn,
moderation blocks, retrieval outages and error answers.

Logs never hold the user's text or the reply (only their sizes), nor any secret."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ..engine import ChatResult

# the stack sets its own name, so two stacks in one account keep their metrics apart
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ragchat")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "RagChat"))

STEP_METRICS = {
    "history": "HistoryLatency",
    "retrieval": "RetrievalLatency",
    "moderation_input": "ModerationInputLatency",
    "generation": "GenerationLatency",
    "moderation_output": "ModerationOutputLatency",
    "store": "StoreLatency",
    "total": "TurnLatency",
}


def record_turn(result: ChatResult) -> None:
    """The engine's observer: one log line and the step metrics of a finished turn."""
    for step, milliseconds in result.timings_ms.items():
        if step in STEP_METRICS:
            metrics.add_metric(name=STEP_METRICS[step], unit=MetricUnit.Milliseconds, value=milliseconds)
    metrics.add_metric(name="Turns", unit=MetricUnit.Count, value=1)
    if result.blocked:
        metrics.add_metric(name="ModerationBlocks", unit=MetricUnit.Count, value=1)
    if result.warnings:
        metrics.add_metric(name="RetrievalUnavailable", unit=MetricUnit.Count, value=1)
    logger.info(
        "chat turn",
        session_id=result.session_id,
        blocked=result.blocked,
        sources=len(result.sources),
        reply_chars=len(result.outputs),
        warnings=result.warnings,
        timings_ms=result.timings_ms,
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def invocation_ids(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The Lambda request id and X-Ray trace id the Web Adapter passed on, if any."""
    ids: dict[str, str] = {}
    for name in (b"x-amzn-lambda-context", b"x-amzn-request-context"):
        raw = _header(headers, name)
        if not raw:
            continue
        try:
            context = json.loads(raw)
        except json.JSONDecodeError:
            continue
        ids.setdefault("request_id", context.get("request_id") or context.get("requestId") or "")
        if context.get("xray_trace_id"):
            ids.setdefault("xray_trace_id", context["xray_trace_id"])
    trace = _header(headers, b"x-amzn-trace-id")
    if trace:
        ids.setdefault("xray_trace_id", trace)
    return {key: value for key, value in ids.items() if value}


CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up: a client error, not a server one


class ObservabilityMiddleware:
    """Pure ASGI (so streamed responses pass through untouched): tags the logs with the
    invocation's ids, logs one line per request, counts error answers and flushes the
    metrics when the response is complete."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ids = invocation_ids(scope.get("headers", []))
        trace = ids.pop("xray_trace_id", "")
        if trace:
            # Where the Lambda runtime would put it: Powertools adds it to every log line,
            # and botocore passes it on to AWS calls (the trace continues into SageMaker).
            os.environ["_X_AMZN_TRACE_ID"] = trace
        logger.remove_keys(["request_id"])
        logger.append_keys(**ids)
        started = time.perf_counter()
        status: int | None = None
        client_left = False

        async def watch() -> dict[str, Any]:
            nonlocal client_left
            message = await receive()
            client_left = client_left or message["type"] == "http.disconnect"
            return message

        async def observe(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, watch, observe)
        finally:
            if status is None:  # no answer began: the client hung up first, or the app failed
                status = CLIENT_CLOSED_REQUEST if client_left else 500
            metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
            if status == 429:
                metrics.add_metric(name="Throttled", unit=MetricUnit.Count, value=1)
            elif status >= 500:
                metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
            elif status >= 400:
                metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
            logger.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            metrics.flush_metrics()
