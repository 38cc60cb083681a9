"""The Lambda's own cost: cold-start import time, engine build time, and the overhead per
request (time outside every model, Pinecone and AWS call) with instant stand-ins.

The app runs on uvicorn as in the Lambda (the Web Adapter reaches it over loopback HTTP);
SageMaker and Pinecone are the test stand-ins (they answer in well under a millisecond),
DynamoDB and Secrets Manager are moto. Every upstream call is timed where the adapters
make it, and overhead = request wall time minus the union of those calls' intervals (the
union, because input moderation runs alongside retrieval)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # per-request log lines would dominate the numbers
sys.path.insert(0, str(ROOT / "lambda"))
sys.path.insert(0, str(ROOT / "tests"))

INTERVALS: list[tuple[float, float]] = []
_LOCK = threading.Lock()


def _record(start: float) -> None:
    with _LOCK:
        INTERVALS.append((start, time.perf_counter()))


class _TimedIterator:
    def __init__(self, inner: Any) -> None:
        self.inner = iter(inner)

    def __iter__(self) -> _TimedIterator:
        return self

    def __next__(self) -> Any:
        start = time.perf_counter()
        try:
            return next(self.inner)
        finally:
            _record(start)


class Timed:
    """Wraps a client: every method call (and the streamed body it returns) is timed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = attr(*args, **kwargs)
            finally:
                _record(start)
            if isinstance(result, dict) and "Body" in result:  # the answer is read after the call
                body = result["Body"]
                result = {**result, "Body": _TimedIterator(body) if name.endswith("stream") else Timed(body)}
            return result

        return call


def union_ms(window: tuple[float, float]) -> float:
    with _LOCK:
        spans = sorted((max(a, window[0]), min(b, window[1])) for a, b in INTERVALS if b > window[0] and a < window[1])
    total, end = 0.0, float("-inf")
    for a, b in spans:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total * 1000


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def bench_imports(runs: int = 7) -> None:
    code = "import time; t = time.perf_counter(); import ragchat.aws.server; print((time.perf_counter() - t) * 1000)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda")}
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        samples.append(float(out.stdout.strip()))
    print(f"{'cold import of ragchat.aws.server':<44} median {statistics.median(samples):7.1f} ms   (n={runs})")


def main() -> None:
    import boto3
    import httpx
    import uvicorn
    from moto.server import ThreadedMotoServer

    from aws_world import PINECONE_KEY, create_deployment, deploy_stand_ins
    from conftest import free_port
    from ragchat.aws import pinecone_index
    from ragchat.aws.factory import AwsClients
    from ragchat.aws.server import create_aws_app
    from standins.pinecone_server import PineconeStandIn
    from standins.sagemaker_runtime import SageMakerRuntimeStandIn

    bench_imports()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log

    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    sagemaker, pinecone = SageMakerRuntimeStandIn(), PineconeStandIn(api_key=PINECONE_KEY)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{moto_port}",
        AWS_ENDPOINT_URL_SECRETS_MANAGER=f"http://127.0.0.1:{moto_port}",
        AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=sagemaker.url,
        PINECONE_CONTROLLER_HOST=pinecone.url,
    )
    deploy_stand_ins(sagemaker, pinecone)
    settings = create_deployment(
        boto3.client("dynamodb"), boto3.client("secretsmanager"), f"bench-{uuid.uuid4().hex[:6]}"
    )

    start = time.perf_counter()
    clients = AwsClients.create(settings)
    print(f"{'engine clients created at startup':<44} {(time.perf_counter() - start) * 1000:13.1f} ms")
    clients = AwsClients(*(Timed(c) if c is not None else None for c in vars(clients).values()))
    original = pinecone_index.PineconeVectorIndex._data_plane
    pinecone_index.PineconeVectorIndex._data_plane = lambda self: Timed(original(self))

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_aws_app(settings, clients), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)

    results = []
    sink = io.StringIO()  # the app's EMF metric lines: written (that cost counts), not shown
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client, contextlib.redirect_stdout(sink):
        for stream in (False, True):
            overheads, walls = [], []
            session = str(uuid.uuid4())
            for i in range(220):
                body = {"inputs": f"Which instances can I use with Managed Spot Training? ({i})", "stream": stream}
                body["parameters"] = {"session_id": session} if i % 2 else {}
                begin = time.perf_counter()
                response = client.post("/chat", json=body)
                response.read()
                end = time.perf_counter()
                assert response.status_code == 200, response.text
                if i >= 20:  # warm-up excluded
                    walls.append((end - begin) * 1000)
                    overheads.append((end - begin) * 1000 - union_ms((begin, end)))
            label = "streaming" if stream else "buffered"
            results.append(
                f"{'/chat ' + label + ' overhead (outside calls)':<44} p50 {pct(overheads, 50):6.2f} ms   "
                f"p95 {pct(overheads, 95):6.2f} ms   (wall p50 {pct(walls, 50):.1f} ms, n={len(walls)})"
            )
        time.sleep(0.2)  # the last response's metrics are flushed just after it ends
    print("\n".join(results))
    server.should_exit = True
    moto.stop()
    sagemaker.close()
    pinecone.close()


if __name__ == "__main__":
    main()
