"""What a browser on another site must not be able to do to a server on this machine.

A page the user visits can send requests to `127.0.0.1` (form posts and `no-cors` fetches
need no permission), and through DNS rebinding it can make its own host name point at
`127.0.0.1` and read the answers. So, before anything else runs:

- the `Host` header must name this server (its loopback names, the address it is bound
  to, or names allowed on purpose): a rebound name is refused;
- an `Origin`, when the browser sends one, must be this server's own: a cross-site
  request is refused;
- a POST must be labelled `Content-Type: application/json`. A page can only send that
  label cross-site after a CORS preflight, which these servers never grant; the "simple"
  types a form or a `no-cors` fetch can send (form-urlencoded, multipart, text/plain) are
  refused.

Refusals are 403/415 JSON bodies naming the header."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from .http_errors import ApiError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
JSON_HINT = (
    "send the body as JSON with the header Content-Type: application/json "
    "(curl --json '{...}', or curl -H 'Content-Type: application/json' -d '{...}')"
)


def host_name(host: str) -> str:
    """`example.com:8080` -> `example.com`; `[::1]:8080` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]") + 1
        rest = host[end:]
        # only a port may follow the bracket: "[::1]evil.example" is no loopback name
        return host[:end] if end and (not rest or (rest[0] == ":" and rest[1:].isdigit())) else host
    name, _, port = host.partition(":")
    return name if host.count(":") == 1 and port.isdigit() else host  # "127.0.0.1:evil.example" is no port


class HostPolicy:
    """Allowed `Host` values: `name` (any port), `name:port` (that port only) or
    `*.suffix` (any name under that domain, any port)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        entries = {entry.strip().lower() for entry in allowed if entry.strip()}
        self.exact = {e for e in entries if host_name(e) != e}
        self.names = {e for e in entries if e not in self.exact and not e.startswith("*.")}
        self.suffixes = tuple(e[1:] for e in entries if e.startswith("*."))

    def allows(self, host: str) -> bool:
        host = host.strip().lower()
        name = host_name(host)
        return host in self.exact or name in self.names or any(name.endswith(s) for s in self.suffixes)


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


class CrossSiteGuard:
    """Pure ASGI middleware (streamed responses pass untouched): refuses requests from
    other sites before routing, reading or signing anything."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = HostPolicy(allowed_hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict[str, Any]) -> ApiError | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.hosts.allows(host):
            return ApiError(
                403,
                "forbidden_host",
                f"this server does not answer to the host name {host_name(host) or '(none)'!r}; "
                "use its own address (for a deliberate LAN or container name: ragchat serve --allowed-host NAME)",
                "host",
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.strip().lower():
            return ApiError(403, "forbidden_origin", f"cross-site requests are refused (Origin {origin!r})", "origin")
        if scope["method"] == "POST" and media_type(headers) != "application/json":
            sent = media_type(headers) or "no Content-Type"
            return ApiError(415, "unsupported_media_type", f"{JSON_HINT}; this request sent {sent}", "content-type")
        return None
