"""The Lambda's web app: the same HTTP app as the local mode, on the AWS engine.

`lambda/run.sh` serves `app` with uvicorn behind the AWS Lambda Web Adapter, which turns
Function URL invocations into HTTP requests and streams the response back
(`InvokeMode: RESPONSE_STREAM`). The engine is built during startup, in the Lambda's init
phase, so the first request does not pay for it; a configuration error stops startup
with a message naming the missing variable."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette

from ..app import create_app
from ..engine import ChatEngine
from ..guards import LOOPBACK_NAMES
from .factory import AwsClients, build_aws_engine
from .identity import caller_identity
from .observability import ObservabilityMiddleware, logger, record_turn
from .settings import AwsSettings, ConfigurationError


class LazyEngine:
    """Builds the engine once per container, on first need, thread-safely."""

    def __init__(self, build: Callable[[], ChatEngine]) -> None:
        self._build = build
        self._engine: ChatEngine | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def __call__(self) -> ChatEngine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build()
        return self._engine


def function_hosts() -> list[str]:
    """The Host values the function answers to: its Function URL (the Web Adapter passes
    the URL's host on) and loopback, where the adapter sends its readiness checks."""
    return [*LOOPBACK_NAMES, f"*.lambda-url.{os.environ.get('AWS_REGION', '')}.on.aws"]


def create_aws_app(settings: AwsSettings | None = None, clients: AwsClients | None = None) -> Starlette:
    def build() -> ChatEngine:
        resolved = settings or AwsSettings.from_env()
        engine = build_aws_engine(resolved, clients)
        engine.observer = record_turn
        logger.info("engine ready", model_profile=resolved.model_profile, moderation=resolved.moderation)
        return engine

    engine = LazyEngine(build)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            engine()
        except ConfigurationError as exc:
            logger.error(f"configuration error: {exc}")
            raise
        yield
        engine.close()

    app = create_app(engine, allowed_hosts=function_hosts(), caller_identity=caller_identity)
    app.router.lifespan_context = lifespan
    app.add_middleware(ObservabilityMiddleware)
    return app


app = create_aws_app()
