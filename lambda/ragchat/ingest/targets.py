"""Where ingested chunks go: the local mode's FAISS index, or a Pinecone index (created
when missing: serverless, `dotproduct` with a sparse field, which hybrid dense + BM25
search needs). A target whose dimension differs from the embedder's, or a Pinecone index
that cannot hold sparse vectors, is refused before anything is written."""

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


# The reserved schema field names through which Pinecone's vectors API (upsert `values`
# and `sparse_values`, query `vector` and `sparse_vector`) addresses an index's vectors.
DENSE_FIELD = "_values"
SPARSE_FIELD = "_sparse_values"


def hybrid_schema(dimension: int) -> dict[str, Any]:
    """Pinecone scores a sparse-dense query only on a `dotproduct` index, and takes sparse
    values only when the schema declares the sparse field. Unit vectors make the dense
    dot product the cosine."""
    return {
        "fields": {
            DENSE_FIELD: {"type": "dense_vector", "dimension": dimension, "metric": "dotproduct"},
            SPARSE_FIELD: {"type": "sparse_vector"},
        }
    }


def _dense_dimension(model: Any) -> int | None:
    for field in model.schema.fields.values():
        dimension = getattr(field, "dimension", None)
        if dimension:
            return int(dimension)
    return None


def _is_hybrid(model: Any) -> bool:
    from pinecone.models.indexes.schema import DenseVectorField, SparseVectorField

    fields = list(model.schema.fields.values())
    dense = [f for f in fields if isinstance(f, DenseVectorField)]
    dotproduct = any(str(f.metric).lower() == "dotproduct" for f in dense)
    return dotproduct and any(isinstance(f, SparseVectorField) for f in fields)


def pinecone_target(
    name: str, dimension: int, api_key: str, *, cloud: str = "aws", region: str = "us-east-1", wait_seconds: int = 300
) -> VectorIndex:
    """The index, created and waited for if missing, refused if its dimension differs."""
    from ..aws.factory import pinecone_vector_index

    index = pinecone_vector_index(name, lambda refresh=False: api_key)
    client = index.client(api_key)
    if name in {model.name for model in client.indexes.list()}:
        model = client.indexes.describe(name)
        existing = _dense_dimension(model)
        if existing != dimension:
            raise TargetError(
                f"refusing to write: Pinecone index {name!r} has dimension {existing}, the embedder {dimension}; "
                "use another --index name or an embedder of that dimension"
            )
        if not _is_hybrid(model):
            raise TargetError(
                f"refusing to write: Pinecone index {name!r} cannot hold sparse vectors (hybrid search needs a "
                "dotproduct index with a sparse field, and an index's schema cannot change). Ingest into a new "
                "--index name and point the stack's pinecone_index at it, or delete this index and re-run; "
                "see the README, 'Migrating a cosine index'"
            )
        return index
    client.indexes.create(
        name=name,
        schema=hybrid_schema(dimension),
        deployment={"deployment_type": "managed", "cloud": cloud, "region": region},
        timeout=wait_seconds,
    )
    return index
