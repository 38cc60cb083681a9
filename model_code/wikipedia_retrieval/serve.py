"""The SageMaker serving contract for a custom image: `docker run IMAGE serve` answers
`GET /ping` and `POST /invocations` on port 8080. The index loads before the port opens, so
a 200 on /ping means the endpoint can answer; the stack gives the load its own timeout.

Standard library only: one small JSON route needs no web framework in the image."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from handler import BadRequest, WikipediaRetriever, handle

MAX_BODY = 64 * 1024
log = logging.getLogger("wikipedia_retrieval")


def make_handler(retriever: WikipediaRetriever) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"field": "path", "message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if self.path != "/invocations":
                return self._send(404, {"error": {"field": "path", "message": f"no route {self.path}"}})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._send(413, {"error": {"field": "body", "message": f"at most {MAX_BODY} bytes"}})
            content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            if content_type != "application/json":
                return self._send(415, {"error": {"field": "Content-Type", "message": "send application/json"}})
            body = self.rfile.read(length)
            started = time.perf_counter()
            try:
                answer = handle(retriever, body)
            except BadRequest as exc:
                return self._send(400, {"error": {"field": exc.field, "message": exc.message}})
            except Exception:
                log.exception("retrieval failed")
                return self._send(500, {"error": {"field": None, "message": "retrieval failed"}})
            log.info("%d results in %.0f ms", len(answer["results"]), (time.perf_counter() - started) * 1000)
            self._send(200, answer)

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # queries stay out of the logs
            pass

    return Handler


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    folder = Path(os.environ.get("RETRIEVAL_MODEL_DIR", "/opt/ml/model"))
    started = time.perf_counter()
    retriever = WikipediaRetriever(folder)
    log.info(
        "loaded %d snippets, %s (%d-d) in %.0f s",
        len(retriever.snippets),
        retriever.config.encoder_id,
        retriever.config.dimension,
        time.perf_counter() - started,
    )
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    ThreadingHTTPServer(("0.0.0.0", port), make_handler(retriever)).serve_forever()


if __name__ == "__main__":
    main()
