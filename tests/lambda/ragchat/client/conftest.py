"""Clients against a real server: the app on uvicorn (local mode), and behind it a
stand-in Function URL that checks SigV4 signatures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.function_url import FunctionUrlStandIn


@pytest.fixture
def function_url(live_server) -> Iterator[FunctionUrlStandIn]:
    server = FunctionUrlStandIn(live_server)
    yield server
    server.close()


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
