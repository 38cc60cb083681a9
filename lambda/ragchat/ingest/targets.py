"""Where ingested chunks go: the local mode's FAISS index, or a Pinecone index (created,
serverless and cosine, when missing). A target whose dimension differs from the
embedder's is refused before anything is written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..interfaces import VectorIndex


class TargetError(RuntimeError):
    """The target cannot take these vectors; nothing was written."""


def local_target(data_dir: Path, dimension: int) -> VectorIndex:
    from ..local.factory import local_index

    try:
        return local_index(data_dir, dimension)
    except ValueError as exc:
        raise TargetError(f"refusing to write: {exc}") from None


def pinecone_api_key(secret_arn: str | None) -> str:
    """The key from `PINECONE_API_KEY`, or from the stack's secret."""
    if secret_arn:
        from ..aws.factory import secret_api_key

        return secret_api_key(secret_arn)()
    key = os.environ.get("PINECONE_API_KEY", "")
    if not key:
        raise TargetError("set PINECONE_API_KEY, or pass --secret-arn with the stack's PineconeSecretArn output")
    return key


def _dense_dimension(model: Any) -> int | None:
    for field in model.schema.fields.values():
        dimension = getattr(field, "dimension", None)
        if dimension:
            return int(dimension)
    return None


def pinecone_target(
    name: str, dimension: int, api_key: str, *, cloud: str = "aws", region: str = "us-east-1", wait_seconds: int = 300
) -> VectorIndex:
    """The index, created and waited for if missing, refused if its dimension differs."""
    from ..aws.factory import pinecone_vector_index

    index = pinecone_vector_index(name, lambda refresh=False: api_key)
    client = index.client(api_key)
    if name in {model.name for model in client.indexes.list()}:
        existing = _dense_dimension(client.indexes.describe(name))
        if existing != dimension:
            raise TargetError(
                f"refusing to write: Pinecone index {name!r} has dimension {existing}, the embedder {dimension}; "
                "use another --index name or an embedder of that dimension"
            )
        return index
    client.indexes.create(
        name=name,
        schema={"fields": {"values": {"type": "dense_vector", "dimension": dimension, "metric": "cosine"}}},
        deployment={"deployment_type": "managed", "cloud": cloud, "region": region},
        timeout=wait_seconds,
    )
    return index
