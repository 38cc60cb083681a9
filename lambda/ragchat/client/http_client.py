"""The chat API over HTTP: one-shot and streamed (server-sent events) turns, signed with
SigV4 when the URL is a Function URL, and every common failure turned into a message
that says what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .signing import SigV4Signer


class ClientFailure(Exception):
    """A failed call, explained for a person; `status` is the HTTP status if there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class StreamEvent:
    kind: str  # "token", "done" or "error"
    data: dict[str, Any] = field(default_factory=dict)


class ChatClient:
    def __init__(self, url: str, signer: SigV4Signer | None = None, timeout: float = 120.0) -> None:
        self.base = url.rstrip("/")
        self.signer = signer
        self.timeout = timeout
        self.http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self.http.close()

    def _request(self, path: str, body: dict[str, Any], stream: bool) -> httpx.Request:
        url = f"{self.base}{path}"
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.signer is not None:
            headers = self.signer.headers("POST", url, data, headers)
        return self.http.build_request("POST", url, content=data, headers=headers)

    def ask(self, question: str, session_id: str | None = None, **parameters: Any) -> dict[str, Any]:
        """One buffered turn: the service's JSON response."""
        body = {"inputs": question, "parameters": _parameters(session_id, parameters)}
        with self._send(self._request("/chat", body, stream=False)) as response:
            response.read()
            return response.json()

    def retrieve(
        self,
        query: str,
        history: list[dict[str, str]] | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
    ) -> dict:
        """What the service retrieves for a turn (`POST /retrieve`): ranked matches and the
        sources its prompt would get (leaving room for `max_new_tokens`, by default the model's)."""
        body: dict[str, Any] = {"query": query}
        if max_new_tokens:
            body["max_new_tokens"] = max_new_tokens
        if history:
            body["history"] = history
        if top_k:
            body["top_k"] = top_k
        with self._send(self._request("/retrieve", body, stream=False)) as response:
            response.read()
            return response.json()

    def stream(self, question: str, session_id: str | None = None, **parameters: Any) -> Iterator[StreamEvent]:
        """One streamed turn: `token` events as they arrive, then `done` (or `error`)."""
        body = {"inputs": question, "parameters": _parameters(session_id, parameters), "stream": True}
        with self._send(self._request("/chat", body, stream=True)) as response:
            try:
                for event, data in _server_sent_events(response.iter_lines()):
                    parsed = json.loads(data)
                    if event == "error":
                        raise ClientFailure(_explain_error(parsed, None, self.base))
                    yield StreamEvent(event or "message", parsed)
            except httpx.TimeoutException:
                raise ClientFailure(
                    f"the answer stopped arriving for {self.timeout:.0f} s: the model endpoint may be overloaded"
                ) from None

    def _send(self, request: httpx.Request) -> _Response:
        try:
            response = self.http.send(request, stream=True)
        except httpx.ConnectError as exc:
            local = "127.0.0.1" in self.base or "localhost" in self.base
            hint = " Is the local service running (`make run`)?" if local else " Check the URL and your network."
            raise ClientFailure(f"cannot connect to {self.base}: {exc}.{hint}") from None
        except httpx.TimeoutException:
            raise ClientFailure(
                f"no answer from {self.base} within {self.timeout:.0f} s: the model endpoint may be starting or "
                "overloaded. Try again, or raise --timeout."
            ) from None
        if response.status_code >= 400:
            response.read()
            response.close()
            explained = _explain_status(response, self.base, signed=self.signer is not None)
            raise ClientFailure(explained, response.status_code)
        return _Response(response)


class _Response:
    """Closes the streamed httpx response however the caller leaves."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _parameters(session_id: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in parameters.items() if v is not None}
    if session_id:
        out["session_id"] = session_id
    return out


def _server_sent_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    event, data = None, []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, "\n".join(data)


def _explain_status(response: httpx.Response, base: str, signed: bool) -> str:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if status == 403 and isinstance(body, dict) and "Message" in body:  # the Function URL's own IAM check
        if not signed:
            return (
                f"403 Forbidden from {base}: this Function URL uses AWS_IAM auth and the request was not signed; "
                "leave signing on (the default for *.lambda-url.*.on.aws URLs) or pass --sign."
            )
        return (
            f"403 Forbidden from {base}: your AWS identity may not invoke this function. Grant it both "
            "lambda:InvokeFunctionUrl (with lambda:FunctionUrlAuthType = AWS_IAM) and lambda:InvokeFunction on the "
            "function (Function URLs created since October 2025 need both), and check that the credentials are "
            "current and for the function's account."
        )
    if status == 401:
        return f"401 from {base}: the signature was rejected (expired session token, or a clock off by minutes?)"
    return _explain_error(body, status, base)


def _explain_error(body: Any, status: int | None, base: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"HTTP {status} from {base}: {str(body)[:300] or 'no details'}"
    code, message, step = error.get("code"), error.get("message", ""), error.get("step")
    where = f" in step {step}" if step else ""
    prefix = f"HTTP {status}" if status else "the service"
    if code == "parked":
        return f"{prefix}: {message}"
    if code == "endpoint_not_ready":
        return (
            f"{prefix}: a model endpoint is not in service yet{where} ({message}). A fresh deploy takes 10-20 "
            "minutes to load the model, and a scaled-to-zero endpoint needs minutes to start: try again later."
        )
    if code == "throttled":
        return f"{prefix}: the model endpoint is busy or scaling{where}; retry in a few seconds ({message})"
    if code == "timeout":
        return f"{prefix}: the model endpoint did not answer in time{where} ({message}); try again"
    field_name = f" (field {error['field']})" if error.get("field") else ""
    return f"{prefix} {code}{where}{field_name}: {message}"
