"""A stand-in for the Hugging Face hub's model API and file downloads (the calls
`huggingface_hub` makes for `list_repo_files` and `snapshot_download`), serving a local
folder as one repository at one commit."""

from __future__ import annotations

import hashlib
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import Recorded, StandInServer, send_json

COMMIT = "0123456789abcdef0123456789abcdef01234567"
API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<kind>tree|revision)/(?P<rev>[^/?]+)(?:/.*)?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class HubStandIn(StandInServer):
    def __init__(self, repo_id: str, folder: Path, revisions: tuple[str, ...] = ("main", COMMIT)) -> None:
        self.repo_id, self.revisions = repo_id, revisions
        self.files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        super().__init__()

    def downloads(self) -> list[str]:
        """The files whose content was fetched (GET on resolve)."""
        return [m["path"] for r in self.requests if r.method == "GET" and (m := RESOLVE.match(unquote(r.path)))]

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        path = unquote(urlparse(recorded.path).path)
        api, resolve = API.match(path), RESOLVE.match(path)
        match = api or resolve
        if not match or match["repo"] != self.repo_id:
            return self._error(handler, 404, "Repository not found", "RepoNotFound")
        if match["rev"] not in self.revisions:
            return self._error(handler, 404, "Invalid rev id", "RevisionNotFound")
        if api and api["kind"] == "tree":
            entries = [
                {"type": "file", "path": n, "size": p.stat().st_size, "oid": _oid(p)} for n, p in self.files.items()
            ]
            return send_json(handler, 200, entries)
        if api:
            siblings = [{"rfilename": name} for name in self.files]
            return send_json(handler, 200, {"id": self.repo_id, "sha": COMMIT, "siblings": siblings})
        file = self.files.get(resolve["path"])
        if file is None:
            return self._error(handler, 404, "Entry not found", "EntryNotFound")
        data = file.read_bytes()
        start = 0
        if (ranged := re.match(r"bytes=(\d+)-", recorded.headers.get("range", ""))) and recorded.method == "GET":
            start = int(ranged.group(1))
        handler.send_response(206 if start else 200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{_oid(file)}"')
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        if recorded.method == "GET":
            handler.wfile.write(data[start:])

    def _error(self, handler: BaseHTTPRequestHandler, status: int, message: str, code: str) -> None:
        send_json(handler, status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})


def _oid(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()
