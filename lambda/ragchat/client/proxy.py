"""A local proxy that signs each request with SigV4 and forwards it to a deployed,
IAM-authenticated Function URL, streaming the answer back. It lets a browser use the
chat page of the deployed stack: open http://127.0.0.1:PORT/ while it runs.

It spends your AWS credentials on whatever it forwards, so it forwards little: only the
page (`GET /`) and chat turns (`POST /chat`, JSON, at most the app's body limit), only
for requests addressed to its own loopback address and port and, when a browser names
an origin, from its own origin (`CrossSiteGuard`: no other site, and no DNS-rebound name,
gets anything signed). Query strings and other headers are dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..guards import CrossSiteGuard
from ..http_errors import ApiError
from ..limits import read_body
from .signing import SigV4Signer

FORWARDED_HEADERS = ("content-type", "accept")
# what comes back: the page's own security headers too (its CSP, which names the hashes of the page's
# scripts, and frame-ancestors 'none': a page that signs with your credentials must not be framed)
RELAYED_HEADERS = (
    "content-type", "retry-after", "cache-control",
    "content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options",
)  # fmt: skip
PROXY_HOST = "127.0.0.1"


def proxy_hosts(port: int) -> list[str]:
    """The Host values a browser sends to the proxy: its own address and port."""
    return [f"{PROXY_HOST}:{port}", f"localhost:{port}"]


def create_proxy_app(target: str, signer: SigV4Signer, *, port: int, timeout: float = 300.0) -> Starlette:
    """`port` is the loopback port the proxy listens on: only requests addressed to it
    are forwarded."""
    base = target.rstrip("/")
    client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))

    async def forward(request: Request) -> Response:
        body = await read_body(request) if request.method == "POST" else b""
        url = base + request.url.path
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        signed = signer.headers(request.method, url, body, headers)
        try:
            upstream = await client.send(
                client.build_request(request.method, url, content=body, headers=signed), stream=True
            )
        except httpx.HTTPError as exc:
            message = f"the proxy cannot reach {base}: {exc}"
            return JSONResponse({"error": {"code": "proxy_error", "message": message}}, status_code=502)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_bytes():
                    yield chunk
            finally:
                await upstream.aclose()

        keep = {k: v for k, v in upstream.headers.items() if k.lower() in RELAYED_HEADERS}
        return StreamingResponse(relay(), status_code=upstream.status_code, headers=keep)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, f"the proxy does not forward this: {exc.detail}", "path").response()

    return Starlette(
        routes=[Route("/", forward, methods=["GET"]), Route("/chat", forward, methods=["POST"])],
        middleware=[Middleware(CrossSiteGuard, allowed_hosts=proxy_hosts(port))],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error},
    )
