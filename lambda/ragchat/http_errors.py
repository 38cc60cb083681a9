"""The one error body of every HTTP surface (the app, the signing proxy, their guards):
`{"error": {"code", "message", "field"?, ...}}` with a 4xx/5xx status, or OpenAI's error
object for the app's OpenAI-compatible routes."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.extra = status, code, message, field, extra

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return {"error": body}

    def openai_payload(self) -> dict[str, Any]:
        from .openai_api import error_body

        body = error_body(self.status, self.message, self.field, self.code)
        body["error"].update(self.extra)
        return body

    def response(self, openai_shape: bool = False) -> JSONResponse:
        return JSONResponse(self.openai_payload() if openai_shape else self.payload(), status_code=self.status)
