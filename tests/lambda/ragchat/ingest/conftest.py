"""Shared by the ingestion tests: the real tokenizer, and a small folder of documents."""

from __future__ import annotations

from pathlib import Path

import pytest

LONG_PARAGRAPH = " ".join(
    f"Sentence {n} explains how Managed Spot Training checkpoints model state to S3." for n in range(60)
)


@pytest.fixture(scope="session")
def tokens():
    from ragchat.ingest.tokens import MiniLMTokens

    return MiniLMTokens()


@pytest.fixture
def docs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "spot.md").write_text(
        "# Spot training\n\nThe zebra-quokka protocol lets Managed Spot Training cut costs by up to 90 percent.\n\n"
        "## Checkpoints\n\nSave checkpoints to S3 so that interrupted jobs resume.\n\n" + LONG_PARAGRAPH + "\n"
    )
    (folder / "pricing.html").write_text(
        "<html><head><title>t</title><style>p{}</style></head><body><h1>Pricing</h1>"
        "<p>Inference endpoints are billed per instance-second, even when idle.</p>"
        "<script>alert('not text')</script></body></html>"
    )
    (folder / "notes.txt").write_text("Serverless inference scales to zero when there is no traffic.\n")
    (folder / "image.png").write_bytes(b"\x89PNG not a document")
    return folder
