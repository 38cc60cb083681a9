"""A stand-in for a Lambda Function URL with `AuthType: AWS_IAM`: it checks each request's
SigV4 signature (service `lambda`) against known test credentials with botocore's signer,
answers 403 `{"Message": "Forbidden"}` as the real one does, and forwards good requests to
the app behind it."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .base import Recorded, StandInServer, send_chunked, send_json

AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def expected_signature(recorded: Recorded, url: str, credentials: Credentials, region: str) -> str | None:
    """The signature botocore computes for the same canonical request, or None if the
    request carries no well-formed SigV4 authorization."""
    match = AUTHORIZATION.match(recorded.headers.get("authorization", ""))
    if not match or match["service"] != "lambda" or match["region"] != region:
        return None
    signed = match["signed"].split(";")
    headers = {name: recorded.headers[name] for name in signed if name in recorded.headers}
    request = AWSRequest(method=recorded.method, url=url, data=recorded.body, headers=headers)
    request.context["timestamp"] = recorded.headers.get("x-amz-date", "")
    signer = SigV4Auth(credentials, "lambda", region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


# Fixed test credentials: requests signed with them verify; anything else is refused.
TEST_CREDENTIALS = Credentials("AKIDEXAMPLETESTKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session-token-123")


HOP_BY_HOP = {"content-type", "content-length", "transfer-encoding", "connection", "date", "server"}


class FunctionUrlStandIn(StandInServer):
    def __init__(self, backend: str, credentials: Credentials = TEST_CREDENTIALS, region: str = "us-east-1") -> None:
        self.backend, self.credentials, self.region = backend.rstrip("/"), credentials, region
        self.allowed = True  # False: the signature is fine but the identity lacks lambda:InvokeFunctionUrl
        self.verified: list[bool] = []
        super().__init__()

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        match = AUTHORIZATION.match(recorded.headers.get("authorization", ""))
        good = (
            match is not None
            and match["key"] == self.credentials.access_key
            and match["signature"]
            == (expected_signature(recorded, self.url + recorded.path, self.credentials, self.region))
        )
        self.verified.append(good)
        if not good or not self.allowed:
            return send_json(handler, 403, {"Message": "Forbidden"})
        headers = {k: v for k, v in recorded.headers.items() if k in ("content-type", "accept")}
        with httpx.stream(recorded.method, self.backend + recorded.path, content=recorded.body, headers=headers,
                          timeout=30) as upstream:  # fmt: skip
            content_type = upstream.headers.get("content-type", "application/json")
            # a Function URL passes the function's own response headers on (hop-by-hop ones aside)
            passed = [(k, v) for k, v in upstream.headers.items() if k not in HOP_BY_HOP]
            send_chunked(handler, content_type, upstream.iter_bytes(), status=upstream.status_code, headers=passed)
