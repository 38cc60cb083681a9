"""Inference handler for all-MiniLM-L6-v2 in the Hugging Face CPU inference container.

The stock feature-extraction task returns token-level vectors and the original client
averaged padding too. This handler returns one masked-mean-pooled, L2-normalised 384-d
vector per input, so a batch gives exactly the vectors of single calls.
Request: {"inputs": str | [str, ...]}. Response: {"vectors": [[float x 384], ...]}."""

from __future__ import annotations

import json
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

MAX_TOKENS = 256


def model_fn(model_dir: str) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    return {"tokenizer": tokenizer, "model": model}


def input_fn(body: str | bytes, content_type: str) -> list[str]:
    if content_type.split(";")[0].strip() != "application/json":
        raise ValueError(f"unsupported content type {content_type}; send application/json")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError('the body must be JSON: {"inputs": str | [str, ...]}') from None
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        raise ValueError('"inputs" must be a string or a non-empty list of strings')
    return inputs


def predict_fn(texts: list[str], loaded: dict[str, Any]) -> list[list[float]]:
    encoded = loaded["tokenizer"](texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.inference_mode():
        hidden = loaded["model"](**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()


def output_fn(vectors: list[list[float]], accept: str) -> str:
    return json.dumps({"vectors": vectors})
