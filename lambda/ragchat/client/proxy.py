"""A local proxy that signs each request with SigV4 and forwards it to a deployed,
IAM-authenticated Function URL, streaming the answer back. It lets a browser use the
chat page of the deployed stack: open http://127.0.0.1:PORT/ while it runs. Your AWS
credentials stay in this process; the proxy listens on loopback only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .signing import SigV4Signer

FORWARDED_HEADERS = ("content-type", "accept")


def create_proxy_app(target: str, signer: SigV4Signer, timeout: float = 300.0) -> Starlette:
    base = target.rstrip("/")
    client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))

    async def forward(request: Request) -> Response:
        body = await request.body()
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
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

        keep = {
            k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "retry-after", "cache-control")
        }
        return StreamingResponse(relay(), status_code=upstream.status_code, headers=keep)

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
