"""PDF files: one text per page (sources name their page), scans and locked or broken
files reported by name, the rest of the run unaffected."""

from __future__ import annotations

from ragchat.ingest.chunking import chunk_documents
from ragchat.ingest.sources import MAX_TITLE_CHARS, pdf_page_text, read_sources

GUIDE = [
    "Managed Spot Training cuts training costs by up to 90 per-\ncent.\nCheckpoints go to Amazon S3.",
    "",  # a scanned page: no text layer
    "The zebra-quokka protocol (ZQP) resumes interrupted jobs.",
]


def test_each_page_is_a_text_with_its_page_number_and_the_documents_title(tmp_path, make_pdf):
    pdf = make_pdf(tmp_path / "spot-guide.pdf", GUIDE, title="Spot training guide")
    texts, problems = read_sources([pdf])
    assert [(t.metadata["page"], t.text) for t in texts] == [
        (1, "Managed Spot Training cuts training costs by up to 90 percent.\nCheckpoints go to Amazon S3."),
        (3, "The zebra-quokka protocol (ZQP) resumes interrupted jobs."),
    ]
    assert all(t.metadata["file"] == "spot-guide.pdf" and t.metadata["title"] == "Spot training guide" for t in texts)
    assert [str(p) for p in problems] == [f"{pdf}: no text on page(s) 2 (scanned images? OCR them first)"]


def test_a_title_as_long_as_a_page_is_cut_and_every_page_is_still_read(tmp_path, make_pdf):
    """Some tools write a whole page into /Title: every page used to be skipped as a record
    whose fields were too large; now the title is cut at a word and the pages are read."""
    pdf = make_pdf(tmp_path / "export.pdf", ["Page one text.", "Page two text."], title="word " * 3_000)
    texts, problems = read_sources([pdf])
    assert [t.text for t in texts] == ["Page one text.", "Page two text."] and problems == []
    title = texts[0].metadata["title"]
    assert title.endswith("word…") and len(title) <= MAX_TITLE_CHARS


def test_locked_and_broken_pdfs_are_problems_and_the_folder_is_still_read(tmp_path, make_pdf):
    folder = tmp_path / "docs"
    folder.mkdir()
    make_pdf(folder / "a-locked.pdf", ["confidential"], password="secret")
    (folder / "b-broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF body")
    make_pdf(folder / "c-good.pdf", ["Serverless inference scales to zero."])
    texts, problems = read_sources([folder])
    assert [t.metadata["file"] for t in texts] == ["c-good.pdf"]
    assert [p.where for p in problems] == [str(folder / "a-locked.pdf"), str(folder / "b-broken.pdf")]
    assert "encrypted" in problems[0].message and problems[1].message.startswith("cannot read as PDF")


def test_an_unprotected_but_encrypted_pdf_is_read(tmp_path, make_pdf):
    """PDFs 'encrypted' with an empty user password (print/copy restrictions) open as they are."""
    pdf = make_pdf(tmp_path / "restricted.pdf", ["Readable with no password."], password="")
    texts, problems = read_sources([pdf])
    assert problems == [] and texts[0].text == "Readable with no password."


def test_the_same_text_on_two_pages_gets_two_ids(tmp_path, tokens, make_pdf):
    pdf = make_pdf(tmp_path / "repeat.pdf", ["Copyright notice.", "Copyright notice."])
    chunks = chunk_documents(read_sources([pdf])[0], tokens)
    assert len({c.id for c in chunks}) == 2
    assert [c.metadata["page"] for c in chunks] == [1, 2]


def test_page_text_rejoins_broken_words_and_tidies_spacing():
    assert pdf_page_text("in-\nference  end-\npoints\r\n\n\n\nnext") == "inference endpoints\n\nnext"
    assert pdf_page_text("well-known\nterm") == "well-known\nterm"
