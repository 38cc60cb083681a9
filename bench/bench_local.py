"""Local-mode speed on this machine: index build, retrieval latency, generation speed,
end-to-end /chat latency, and the overlap of input moderation with retrieval."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))
sys.path.insert(0, str(ROOT / "tests"))

from retrieval_quality import load_question_set  # noqa: E402

from ragchat.interfaces import GenerationParams, RenderedPrompt  # noqa: E402
from ragchat.local.embedder import OnnxMiniLMEmbedder  # noqa: E402
from ragchat.local.factory import (  # noqa: E402
    DEFAULT_KNOWLEDGE_BASE,
    LocalSettings,
    build_local_engine,
    ensure_knowledge_base,
)
from ragchat.local.vector_index import FaissVectorIndex  # noqa: E402

QUESTIONS = [item["q"] for item in load_question_set("paraphrases_dev")]


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


def report(name: str, samples_ms: list[float]) -> None:
    print(f"{name:<44} p50 {pct(samples_ms, 50):8.1f} ms   p95 {pct(samples_ms, 95):8.1f} ms   (n={len(samples_ms)})")


def bench_index_and_retrieval(tmp: Path) -> None:
    start = time.perf_counter()
    embedder = OnnxMiniLMEmbedder()
    load = time.perf_counter() - start
    index = FaissVectorIndex(tmp / "index", embedder.dimension)
    start = time.perf_counter()
    ensure_knowledge_base(DEFAULT_KNOWLEDGE_BASE, embedder, index, tmp / "state.json", progress=False)
    print(f"{'embedder load':<44} {load:8.2f} s")
    print(f"{'FAQ index build (154 rows, embed + FAISS)':<44} {time.perf_counter() - start:8.2f} s")
    embed_ms, query_ms = [], []
    for _ in range(3):
        for q in QUESTIONS:
            t = time.perf_counter()
            vector = embedder.embed([q])[0]
            embed_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index.query(vector, 5)
            query_ms.append((time.perf_counter() - t) * 1000)
    report("query embedding", embed_ms)
    report("FAISS top-5 query", query_ms)
    report("embedding + retrieval", [a + b for a, b in zip(embed_ms, query_ms, strict=True)])


def bench_generation_and_chat(tmp: Path) -> None:
    from starlette.testclient import TestClient

    from ragchat.app import create_app

    start = time.perf_counter()
    engine = build_local_engine(LocalSettings(data_dir=tmp / "data"), progress=False)
    print(f"{'local engine start (models cached)':<44} {time.perf_counter() - start:8.2f} s")
    generator = engine.generator
    prompt = RenderedPrompt(messages=({"role": "user", "content": "Explain what a GPU is in detail."},))
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        pieces = list(generator.stream(prompt, GenerationParams(temperature=0, max_new_tokens=96)))
        tokens = generator.count_tokens("".join(pieces))
        rates.append(tokens / (time.perf_counter() - t))
    print(f"{'SmolLM2-135M generation (greedy, 96 tokens)':<44} {statistics.median(rates):8.1f} tokens/s")
    with TestClient(create_app(lambda: engine), base_url="http://localhost") as client:
        latencies = []
        for q in QUESTIONS[:8]:
            t = time.perf_counter()
            response = client.post("/chat", json={"inputs": q, "parameters": {"max_new_tokens": 48}})
            latencies.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.text
        report("end-to-end /chat (max_new_tokens=48)", latencies)


def bench_overlap() -> None:
    """Timed doubles: each moderation check (input and output) 200 ms, retrieval 200 ms,
    generation instant. Sequential steps would take 600 ms; overlapped, 400 ms."""
    from conftest import make_engine
    from doubles import MemoryIndex, ScriptedModerator
    from ragchat.engine import ChatRequest

    engine = make_engine(index=MemoryIndex(delay=0.2), moderator=ScriptedModerator(delay=0.2))
    for label, no_retrieval in (("without retrieval", True), ("with 200 ms retrieval", False)):
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            engine.chat(ChatRequest("Which instances?", no_retrieval=no_retrieval))
            samples.append((time.perf_counter() - t) * 1000)
        print(f"{'overlap, 2x200 ms moderation, ' + label:<44} {statistics.median(samples):8.1f} ms")
    print("  (retrieval overlapped with input moderation adds ~0 ms; run in sequence it would add 200 ms)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench_index_and_retrieval(Path(tmp))
        bench_generation_and_chat(Path(tmp))
    bench_overlap()


if __name__ == "__main__":
    main()
