"""A stand-in for Amazon Comprehend's `DetectToxicContent` (AWS JSON 1.1 protocol:
`POST /` with `X-Amz-Target: Comprehend_20171127.DetectToxicContent`)."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from .base import Recorded, StandInServer, refuse_unknown_target, send_json

TARGET = "Comprehend_20171127.DetectToxicContent"
MAX_SEGMENT_BYTES = 1024
MAX_SEGMENTS = 10


class ComprehendStandIn(StandInServer):
    def __init__(self, score: Callable[[str], float]) -> None:
        self.score = score
        super().__init__()

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        if refuse_unknown_target(handler, recorded, TARGET):
            return
        body = recorded.json()
        segments = body.get("TextSegments", [])
        too_long = [s for s in segments if len(s["Text"].encode()) > MAX_SEGMENT_BYTES]
        if not segments or len(segments) > MAX_SEGMENTS or too_long or body.get("LanguageCode") != "en":
            send_json(handler, 400, {"__type": "TextSizeLimitExceededException", "message": "invalid segments"})
            return
        results = []
        for segment in segments:
            toxicity = self.score(segment["Text"])
            labels = [{"Name": "VIOLENCE_OR_THREAT", "Score": toxicity}, {"Name": "PROFANITY", "Score": toxicity / 2}]
            results.append({"Labels": labels, "Toxicity": toxicity})
        send_json(handler, 200, {"ResultList": results})
