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


@pytest.fixture
def make_pdf():
    return write_pdf


def write_pdf(path: Path, pages: list[str], title: str | None = None, password: str | None = None) -> Path:
    """A real PDF written by pypdf: each page's lines as Helvetica text ("" is a page with
    no text layer, as a scan has); optionally titled and password-protected."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for text in pages:
        page = writer.add_blank_page(612, 792)
        if not text:
            continue
        shown = "".join(f"({pdf_string(line)}) Tj T* " for line in text.split("\n"))
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 11 Tf 14 TL 72 740 Td {shown}ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    if title:
        writer.add_metadata({"/Title": title})
    if password is not None:
        writer.encrypt(password)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def pdf_string(text: str) -> str:
    """Text as the inside of a PDF literal string: backslash and parentheses escaped."""
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
