"""SigV4 for Lambda Function URLs (service `lambda`), with botocore's signer and the
standard AWS credential chain (env vars, profiles, SSO, instance/container roles)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

FUNCTION_URL_HOST = re.compile(r"^[a-z0-9]+\.lambda-url\.(?P<region>[a-z0-9-]+)\.on\.aws$")


class SigningError(Exception):
    """Requests cannot be signed; the message says how to fix it."""


def function_url_region(url: str) -> str | None:
    """The region of a Function URL (`https://<id>.lambda-url.<region>.on.aws/`), else None."""
    match = FUNCTION_URL_HOST.match(urlsplit(url).hostname or "")
    return match["region"] if match else None


@dataclass
class SigV4Signer:
    credentials: Any  # botocore Credentials
    region: str
    service: str = "lambda"

    @classmethod
    def from_default_chain(cls, region: str, profile: str | None = None) -> SigV4Signer:
        import botocore.session
        from botocore.exceptions import BotoCoreError

        try:
            session = botocore.session.Session(profile=profile)
            credentials = session.get_credentials()
        except BotoCoreError as exc:
            raise SigningError(f"cannot load AWS credentials: {exc}") from None
        if credentials is None:
            raise SigningError(
                "no AWS credentials found: the Function URL needs SigV4-signed requests. "
                "Run `aws configure` (or `aws sso login`), or set AWS_PROFILE, "
                "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
            )
        return cls(credentials, region)

    def headers(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus the SigV4 ones (Authorization, X-Amz-Date, X-Amz-Security-Token)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(self.credentials.get_frozen_credentials(), self.service, self.region).add_auth(request)
        return dict(request.headers.items())
