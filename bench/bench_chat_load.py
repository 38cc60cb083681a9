"""`/chat` latency under load, with the defaults `make run` serves: the real local engine
on a real uvicorn server (loopback, a free port), clients at concurrency 1 and 4 asking
the dev paraphrases with no parameters (the README's curl). Prints p50/p95 latency and
requests/s, and how many requests the queue turned away (503) or timed out (504)."""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from ragchat.app import create_app  # noqa: E402
from ragchat.evaluation.questions import load_questions  # noqa: E402
from ragchat.local.factory import LocalSettings, build_local_engine  # noqa: E402

QUESTIONS = [q.question for q in load_questions(ROOT / "bench" / "questions" / "paraphrases_dev.jsonl")]


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


def run_level(url: str, concurrency: int, requests: int) -> None:
    def one(question: str) -> tuple[int, float, int]:
        start = time.perf_counter()
        response = httpx.post(f"{url}/chat", json={"inputs": question}, timeout=300)
        tokens = len(response.json().get("outputs", "").split()) if response.status_code == 200 else 0
        return response.status_code, time.perf_counter() - start, tokens

    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(requests)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, questions))
    wall = time.perf_counter() - start
    ok = [seconds for status, seconds, _ in results if status == 200]
    statuses = statistics.multimode([status for status, _, _ in results])
    words = statistics.mean(tokens for status, _, tokens in results if status == 200)
    latency = f"/chat p50 {pct(ok, 50):5.2f} s, p95 {pct(ok, 95):5.2f} s"
    print(
        f"concurrency {concurrency}: {len(results)} requests, {latency}, "
        f"{len(results) / wall:4.2f} requests/s, answers {words:.0f} words on average, "
        f"non-200: {sum(status != 200 for status, _, _ in results)} (most common status {statuses})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_local_engine(LocalSettings(data_dir=Path(tmp)), progress=False)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(lambda: engine), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        httpx.post(f"{url}/chat", json={"inputs": "warm up"}, timeout=300)
        print(
            f"threads: prefill {engine.generator.threads}, generation {engine.generator.generation_threads}; "
            f"defaults: max_new_tokens {engine.profile.default_max_new_tokens}"
        )
        print(f"load average before: {os.getloadavg()[0]:.1f} (other work on the machine slows every number)")
        run_level(url, 1, 12)
        run_level(url, 4, 16)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        server.should_exit = True
        thread.join()


if __name__ == "__main__":
    main()
