"""Text generation on SageMaker: one generator, speaking the payload contract of the
container behind the endpoint (`ragchat.payloads`, chosen by the model's catalog entry)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from ..errors import UpstreamModelError
from ..interfaces import GenerationParams, RenderedPrompt
from ..payloads import ContainerReportedError, PayloadContract
from .sagemaker import SageMakerRuntime

STEP = "generation"
CHARS_PER_TOKEN = 3.0  # conservative for English BPE: the Lambda has no tokenizer


class SageMakerGenerator:
    def __init__(self, runtime: SageMakerRuntime, endpoint: str, contract: PayloadContract) -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.contract = contract

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        contract = self.contract
        if not contract.streams:
            yield self.generate(prompt, params)
            return
        body = contract.request(prompt, params, stream=True)
        lines = self.runtime.invoke_stream(self.endpoint, body, step=STEP, custom_attributes=contract.custom_attributes)
        last = b""
        for line in lines:
            last = line if line.strip() else last
            try:
                piece = contract.parse_line(line)
            except ContainerReportedError as exc:
                raise UpstreamModelError(f"endpoint {self.endpoint} failed mid-stream: {exc}", step=STEP) from None
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
                message = f"endpoint {self.endpoint} streamed an unreadable line: {exc}"
                raise UpstreamModelError(message, step=STEP) from None
            if piece:
                yield piece
        if params.report is not None and last:
            params.report.finish_reason, params.report.completion_tokens = contract.parse_finish(last)

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        contract = self.contract
        body = contract.request(prompt, params, stream=False)
        answer = self.runtime.invoke(self.endpoint, body, step=STEP, custom_attributes=contract.custom_attributes)
        try:
            return contract.parse(answer)
        except ContainerReportedError as exc:
            raise UpstreamModelError(f"endpoint {self.endpoint} failed: {exc}", step=STEP) from None
        except (KeyError, IndexError, TypeError):
            raise UpstreamModelError(
                f"endpoint {self.endpoint} answered in an unexpected shape: {str(answer)[:200]}", step=STEP
            ) from None

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
