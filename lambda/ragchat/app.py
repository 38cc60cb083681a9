"""The HTTP app (ASGI, Starlette): the same app serves the local mode and the Lambda.

Every bad request gets a 4xx JSON body naming the field; streaming replies are
server-sent events. The engine is synchronous, so it runs in the thread pool."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from . import openai_api
from .cancellation import CancellableStream, ClientGone, call_until_disconnect, first_event
from .engine import ChatEngine, ChatRequest, ChatResult, Token
from .errors import ChatServiceError, RetrievalUnavailable
from .guards import LOOPBACK_NAMES, CrossSiteGuard
from .http_errors import ApiError
from .interfaces import GenerationParams, Turn
from .limits import read_body
from .schemas import ChatBody, OpenAIChatBody, RetrieveBody

log = logging.getLogger(__name__)

OPENAI_PREFIX = "/v1/"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# The chat page: one static file, no build step. Its script and style are inline and it
# only talks to the app that served it.
CHAT_PAGE = Path(__file__).parent / "web" / "index.html"


def _inline_hashes(html: str, tag: str) -> str:
    """CSP sources that allow exactly the page's own inline <script> or <style> blocks
    (by their SHA-256), so the policy needs no 'unsafe-inline': an injected script or
    style, or an edited one, does not run."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() for block in blocks)
    return " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"


def chat_page() -> tuple[str, dict[str, str]]:
    """The page and the headers it is served with (its Content-Security-Policy names the
    hashes of this very text)."""
    html = CHAT_PAGE.read_text(encoding="utf-8")
    policy = (
        f"default-src 'none'; script-src {_inline_hashes(html, 'script')}; style-src {_inline_hashes(html, 'style')}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    return html, headers


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_json(raw: bytes) -> Any:
    """Strict JSON with bounded work: pydantic's parser stops at 200 levels of nesting
    and at numbers too long to convert (the standard library recurses once per level and
    raises a bare ValueError past 4300 digits, both 500s), and refuses NaN/Infinity."""
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}", "body") from None


MAX_ERRORS_LISTED = 20  # a 422 lists the first 20 errors and counts them all: its body stays small


async def parse_body(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`; the content type was checked by `CrossSiteGuard`."""
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object", "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        listed = exc.errors(include_url=False, include_context=False, include_input=False)[:MAX_ERRORS_LISTED]
        errors = [{"field": _field_name(e["loc"]), "message": e["msg"]} for e in listed]
        first = errors[0]
        status, message = 422, first["message"]
        if openai_shape(request):  # OpenAI answers 400 (the SDKs' BadRequestError), the parameter in the message
            status, message = 400, f"{first['field']}: {first['message']}"
        raise ApiError(
            status, "validation_error", message, first["field"], errors=errors, error_count=exc.error_count()
        ) from None


def openai_shape(request: Request) -> bool:
    """OpenAI's clients read OpenAI's error shape: the routes under /v1/ answer in it."""
    return request.url.path.startswith(OPENAI_PREFIX)


def wants_stream(request: Request, flag: bool) -> bool:
    return flag or "text/event-stream" in request.headers.get("accept", "")


def sse(event: str | None, data: Any) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


# The deployment's own identifiers (role and secret ARNs, the account id) belong in its log, not
# in answers to callers: an upstream error's message keeps its meaning and loses them.
ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:[^\s\"',;)]+")
ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


def caller_message(exc: ChatServiceError) -> str:
    """What a caller is told of a failure: a lost knowledge base only as such (its cause, the
    secret or index, is in the log), and no ARN or account id in any other message."""
    if isinstance(exc, RetrievalUnavailable):
        return "the knowledge base is unavailable; the cause is in the service log"
    return ACCOUNT_ID.sub("<account>", ARN.sub("<arn in the service log>", str(exc)))


def service_error(exc: ChatServiceError, openai: bool = False) -> ApiError:
    extra: dict[str, Any] = {"step": exc.step} if exc.step else {}
    field = "messages" if openai and exc.field == "inputs" else exc.field  # the OpenAI route's name for it
    return ApiError(exc.status, exc.code, caller_message(exc), field, **extra)


def error_response(error: ApiError, retry_after: int | None = None, openai_shape: bool = False) -> JSONResponse:
    response = error.response(openai_shape)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def create_app(
    engine_provider: Callable[[], ChatEngine],
    *,
    extra_routes: list[Route] | None = None,
    allowed_hosts: Iterable[str] = LOOPBACK_NAMES,
    caller_identity: Callable[[Headers], str] | None = None,
) -> Starlette:
    """`engine_provider` is called per request (cheaply: it returns a built engine), so
    the Lambda can build its engine lazily and tests can swap it. `allowed_hosts` are the
    Host names the app answers to (see `CrossSiteGuard`): loopback unless told otherwise.
    `caller_identity` names the owner of a request's conversations (the Lambda's IAM
    caller); without it, as locally, a session id alone names a conversation."""

    async def chat(request: Request) -> Response:
        body: ChatBody = await parse_body(request, ChatBody)
        p = body.parameters
        engine = engine_provider()
        chat_request = ChatRequest(
            inputs=body.inputs,
            params=GenerationParams(
                temperature=p.temperature,
                top_k=p.top_k,
                max_new_tokens=p.max_new_tokens or engine.profile.default_max_new_tokens,
            ),
            session_id=p.session_id,
            no_retrieval=p.no_retrieval,
            owner=caller_identity(request.headers) if caller_identity else "",
        )
        if not wants_stream(request, body.stream):
            result = await call_until_disconnect(request, chat_request.cancel, engine.chat, chat_request)
            return JSONResponse(result.as_dict())
        events = engine.stream(chat_request)
        first = await first_event(request, chat_request.cancel, events)

        def frames() -> Iterator[str]:
            try:
                for event in _chain(first, events):
                    if isinstance(event, Token):
                        yield sse("token", {"text": event.text})
                    else:
                        yield sse("done", event.as_dict())
            except ChatServiceError as exc:
                log.warning("failure in step %s while streaming: %s", exc.step, exc)
                yield sse("error", service_error(exc).payload())

        return CancellableStream(
            frames(), chat_request.cancel, events, media_type="text/event-stream", headers=SSE_HEADERS
        )

    async def openai_chat(request: Request) -> Response:
        body: OpenAIChatBody = await parse_body(request, OpenAIChatBody)
        engine = engine_provider()
        chat_request = openai_api.chat_request(body, engine.profile.default_max_new_tokens)
        meta = openai_api.CompletionMeta(model=engine.profile.name)
        if not body.stream:
            result = await call_until_disconnect(request, chat_request.cancel, engine.chat, chat_request)
            return JSONResponse(openai_api.completion(result, meta))
        events = engine.stream(chat_request)
        first = await first_event(request, chat_request.cancel, events)
        include_usage = body.stream_options is not None and body.stream_options.include_usage

        def frames() -> Iterator[str]:
            try:
                for chunk in openai_api.chunks(_chain(first, events), meta, include_usage):
                    yield sse(None, chunk)
            except ChatServiceError as exc:
                log.warning("failure in step %s while streaming: %s", exc.step, exc)
                yield sse(None, openai_api.error_body(exc.status, caller_message(exc), None, exc.code))
                return
            yield sse(None, "[DONE]")

        return CancellableStream(
            frames(), chat_request.cancel, events, media_type="text/event-stream", headers=SSE_HEADERS
        )

    async def openai_models(request: Request) -> Response:
        return JSONResponse(openai_api.model_list(engine_provider().profile.name, started))

    async def openai_model(request: Request) -> Response:
        """`GET /v1/models/{id}` (the SDK's `models.retrieve`): the served model, whatever the
        id, as the completions route serves it whatever `model` says ("local" in the README)."""
        return JSONResponse(openai_api.model_object(engine_provider().profile.name, started))

    async def retrieve(request: Request) -> Response:
        """Retrieval as a chat turn would do it: the ranked matches (before the no-answer
        threshold) and the sources its prompt would get. `ragchat eval --url` reads this."""
        body: RetrieveBody = await parse_body(request, RetrieveBody)
        engine = engine_provider()
        history = [Turn(t.role, t.content) for t in body.history]
        params = GenerationParams(max_new_tokens=body.max_new_tokens or engine.profile.default_max_new_tokens)
        ranked, sources = await run_in_threadpool(engine.lookup, body.query, history, params, body.top_k)
        return JSONResponse(
            {
                "query": engine.query_text(body.query, history),
                "matches": [m.as_source() for m in ranked],
                "sources": [m.as_source() for m in sources],
                "min_score": engine.settings.min_score,
            }
        )

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html, headers=page_headers)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model_profile": engine_provider().profile.name})

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response(openai_shape(request))

    async def on_openai_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, openai_api.OpenAIError)
        return ApiError(exc.status, exc.code, exc.message, exc.param).response(openai_shape=True)

    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChatServiceError)
        if exc.field is None and exc.upstream:  # an upstream's doing (throttling too), not the caller's input
            log.warning("upstream failure in step %s: %s", exc.step, exc)
        elif exc.field is None:  # this service's own limits: a capacity question, not a fault
            log.warning("not served (%s): %s", exc.code, exc)
        response = error_response(service_error(exc, openai_shape(request)), exc.retry_after, openai_shape(request))
        if not exc.retryable:
            response.headers["x-should-retry"] = "false"
        return response

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), "path").response(openai_shape(request))

    async def on_client_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # the client left: nobody reads this

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return ApiError(500, "internal_error", "internal error; see the service log").response(openai_shape(request))

    page_html, page_headers = chat_page()
    started = int(time.time())
    routes = [
        Route("/", page, methods=["GET"]),
        Route("/chat", chat, methods=["POST"]),
        Route("/v1/chat/completions", openai_chat, methods=["POST"]),
        Route("/v1/models", openai_models, methods=["GET"]),
        Route("/v1/models/{model:path}", openai_model, methods=["GET"]),
        Route("/retrieve", retrieve, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        *(extra_routes or []),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(CrossSiteGuard, allowed_hosts=allowed_hosts)],
        exception_handlers={
            ApiError: on_api_error,
            openai_api.OpenAIError: on_openai_error,
            ChatServiceError: on_service_error,
            HTTPException: on_http_error,
            ClientGone: on_client_gone,
            Exception: on_unexpected,
        },
    )


def _chain(first: Token | ChatResult | None, rest: Iterator[Token | ChatResult]) -> Iterator[Token | ChatResult]:
    if first is not None:
        yield first
    yield from rest
