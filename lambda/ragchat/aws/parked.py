"""The Lambda's app while the deployment is parked (`-c ragchat:parked=true`): the stack has
removed every endpoint, so every API route answers 503 `parked`, naming how to come back,
instead of a failure deep inside a model call. `/health` stays 200 (the Web Adapter's
readiness check) and `/` still serves the chat page, which shows the message."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..app import ApiError, chat_page

PARKED_MESSAGE = (
    "The chat service is parked: its model endpoints were removed so that nothing bills by the hour. "
    "Unpark with `npx cdk deploy -c ragchat:parked=false` (and the other -c flags you deploy with); "
    "the models take 10-20 minutes to start."
)


def create_parked_app() -> Starlette:
    page_html, page_headers = chat_page()

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html, headers=page_headers)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "parked"})

    async def parked(request: Request) -> Response:
        return ApiError(503, "parked", PARKED_MESSAGE).response()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/{path:path}", parked, methods=methods),
        ]
    )
