"""A stand-in for the Hugging Face hub's model and dataset API and file downloads (the calls
`huggingface_hub` makes for `list_repo_files`, `list_repo_tree` and `snapshot_download`),
serving local folders as repositories at one commit."""

from __future__ import annotations

import hashlib
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import Recorded, StandInServer, send_json

COMMIT = "0123456789abcdef0123456789abcdef01234567"
API = re.compile(
    r"^/api/(?P<type>models|datasets)/(?P<repo>[^/]+/[^/]+)/(?P<kind>tree|revision)/(?P<rev>[^/?]+)(?:/.*)?$"
)
RESOLVE = re.compile(r"^/(?:(?P<type>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class HubStandIn(StandInServer):
    def __init__(
        self, repo_id: str, folder: Path, revisions: tuple[str, ...] = ("main", COMMIT), repo_type: str = "model"
    ) -> None:
        self.revisions = revisions
        self.repos: dict[tuple[str, str], dict[str, Path]] = {}
        self.add_repo(repo_id, folder, repo_type)
        super().__init__()

    def add_repo(self, repo_id: str, folder: Path, repo_type: str = "model") -> None:
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        self.repos[(repo_type, repo_id)] = files

    def downloads(self) -> list[str]:
        """The files whose content was fetched (GET on resolve)."""
        return [m["path"] for r in self.requests if r.method == "GET" and (m := RESOLVE.match(unquote(r.path)))]

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        path = unquote(urlparse(recorded.path).path)
        api, resolve = API.match(path), RESOLVE.match(path)
        match = api or resolve
        repo_type = "dataset" if match and match["type"] == "datasets" else "model"
        files = self.repos.get((repo_type, match["repo"])) if match else None
        if files is None:
            return self._error(handler, 404, "Repository not found", "RepoNotFound")
        if match["rev"] not in self.revisions:
            return self._error(handler, 404, "Invalid rev id", "RevisionNotFound")
        if api and api["kind"] == "tree":
            entries = [{"type": "file", "path": n, "size": p.stat().st_size, "oid": _oid(p)} for n, p in files.items()]
            return send_json(handler, 200, entries)
        if api:
            siblings = [{"rfilename": name} for name in files]
            return send_json(handler, 200, {"id": match["repo"], "sha": COMMIT, "siblings": siblings})
        file = files.get(resolve["path"])
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
