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
