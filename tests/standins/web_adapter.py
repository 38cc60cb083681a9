"""What the AWS Lambda Web Adapter does between a Function URL and the web app, for the
tests: it turns a Function URL event (payload format 2.0) into an HTTP request to the app
started by the function's handler script, and the app's response into the function's
result — a buffered result object, or (`AWS_LWA_INVOKE_MODE=response_stream`) the
HTTP-integration stream: a JSON prelude, eight NUL bytes, then the body as it comes.

Only the documented conversion is re-created here; the app, its server and the handler
script are the real ones."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")


def function_url_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
    base64_body: bool = False,
    request_id: str = "req-0001",
    caller_arn: str | None = None,
) -> dict[str, Any]:
    """A Function URL event; `caller_arn` adds the IAM caller that `AuthType: AWS_IAM`
    puts in `requestContext.authorizer.iam` (absent with `AuthType: NONE`)."""
    raw = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    raw_bytes = raw.encode() if isinstance(raw, str) else raw
    event_body = None
    if raw_bytes is not None:
        event_body = base64.b64encode(raw_bytes).decode() if base64_body else raw_bytes.decode()
    authorizer = None
    if caller_arn:
        account = caller_arn.split(":")[4]
        iam = {"accessKey": "ASIAEXAMPLE", "accountId": account, "callerId": "AIDAEXAMPLE", "cognitoIdentity": None,
               "principalOrgId": None, "userArn": caller_arn, "userId": "AIDAEXAMPLE"}  # fmt: skip
        authorizer = {"iam": iam}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            **({"authorizer": authorizer} if authorizer else {}),
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7"},
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795341600000,
        },
        "body": event_body,
        "isBase64Encoded": base64_body,
    }


@dataclass
class StreamedResult:
    prelude: dict[str, Any]
    body: bytes
    chunk_times: list[float] = field(default_factory=list)  # seconds after the invocation began


class WebAdapter:
    def __init__(self, app_url: str) -> None:
        self.app_url = app_url
        self.client = httpx.Client(base_url=app_url, timeout=30)

    def _request(self, event: dict[str, Any], context: dict[str, Any]) -> httpx.Request:
        body = event.get("body")
        content = b""
        if body is not None:
            content = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        headers = dict(event["headers"])
        headers["x-amzn-request-context"] = json.dumps(event["requestContext"])
        headers["x-amzn-lambda-context"] = json.dumps(context)
        headers["x-amzn-trace-id"] = context.get("xray_trace_id", "")
        url = event["rawPath"] + (f"?{event['rawQueryString']}" if event.get("rawQueryString") else "")
        return self.client.build_request(
            event["requestContext"]["http"]["method"], url, headers=headers, content=content
        )

    def invoke(self, event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        response = self.client.send(self._request(event, context))
        text = response.headers.get("content-type", "").startswith(TEXT_TYPES)
        return {
            "statusCode": response.status_code,
            "headers": dict(response.headers),
            "body": response.text if text else base64.b64encode(response.content).decode(),
            "isBase64Encoded": not text,
        }

    def invoke_streaming(
        self, event: dict[str, Any], context: dict[str, Any], on_chunk: Callable[[bytes], None] | None = None
    ) -> StreamedResult:
        """The streamed result; `on_chunk` sees each piece of the body as it arrives."""
        started = time.perf_counter()
        response = self.client.send(self._request(event, context), stream=True)
        prelude = {"statusCode": response.status_code, "headers": dict(response.headers), "cookies": []}
        stream = json.dumps(prelude).encode() + b"\x00" * 8
        times = []
        for chunk in response.iter_raw():
            stream += chunk
            times.append(time.perf_counter() - started)
            if on_chunk is not None:
                on_chunk(chunk)
        response.close()
        head, _, body = stream.partition(b"\x00" * 8)
        return StreamedResult(json.loads(head), body, times)

    def close(self) -> None:
        self.client.close()
