"""Reading every source format, reporting bad input, and chunking by the model's tokens."""

from __future__ import annotations

import json
import re

import pytest

from ragchat.ingest.chunking import (
    MAX_CHUNK_CHARS,
    MAX_SECTION_CHARS,
    ChunkSettings,
    chunk_documents,
    chunk_id,
    chunk_text,
)
from ragchat.ingest.sources import CsvOptions, JsonlOptions, html_to_text, read_sources
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE


def test_the_faq_csv_reads_as_154_rows_with_row_and_title():
    texts, problems = read_sources([DEFAULT_KNOWLEDGE_BASE])
    assert problems == [] and len(texts) == 154
    row90 = texts[90]
    assert row90.metadata["row"] == 90
    assert row90.metadata["title"].startswith("Which instances can I use with Managed Spot Training")
    assert "used with all instances supported in Amazon SageMaker" in row90.text


def test_sources_are_named_relative_to_the_folder_given_never_by_absolute_path(tmp_path):
    folder = tmp_path / "kb"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "intro.md").write_text("# Intro\n\nEndpoints serve models.\n")
    (folder / "faq.jsonl").write_text(json.dumps({"text": "Spot saves money."}) + "\n")
    single = tmp_path / "single.txt"
    single.write_text("Serverless scales to zero.\n")

    texts, problems = read_sources([folder, single])

    assert problems == []
    assert sorted(t.source for t in texts) == ["faq.jsonl", "guide/intro.md", "single.txt"]
    assert not any(str(tmp_path) in json.dumps([t.source, t.metadata]) for t in texts)


def test_csv_problems_name_file_and_line_and_the_rest_is_read(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("question,answer\nWhat is X?,X is a thing.\nonly one column\n,\nWhat is Y?,Y too.\n")
    texts, problems = read_sources([path], CsvOptions(("question", "answer"), "question", header=True))
    assert [t.text for t in texts] == ["What is X?\nX is a thing.", "What is Y?\nY too."]
    assert [str(p) for p in problems] == [
        f"{path}:3: expected at least 2 columns, found 1",
        f"{path}:4: empty text",
    ]


def test_csv_unknown_column_is_reported(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("q,a\nx,y\n")
    texts, problems = read_sources([path], CsvOptions(("question",), None, header=True))
    assert texts == [] and "no column 'question' (columns: q, a)" in str(problems[0])


def test_jsonl_text_field_metadata_and_bad_lines(tmp_path):
    path = tmp_path / "kb.jsonl"
    lines = [
        json.dumps({"text": "Endpoints bill per second.", "url": "https://x/1", "tags": ["a"]}),
        "{not json",
        json.dumps({"body": "no text field"}),
        "[1, 2]",
        json.dumps({"text": "  "}),
    ]
    path.write_text("\n".join(lines) + "\n")
    texts, problems = read_sources([path], jsonl_options=JsonlOptions())
    assert len(texts) == 1 and texts[0].metadata == {"url": "https://x/1", "line": 1}
    assert [p.where for p in problems] == [f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:5"]
    assert "not valid JSON" in problems[0].message and "no text in field 'text'" in problems[1].message


def test_folder_reads_markdown_text_and_html_and_skips_others(docs_folder):
    (docs_folder / "broken.txt").write_bytes(b"\xff\xfe\x00bad utf-8 \xc3")
    (docs_folder / "empty.md").write_text("   \n")
    texts, problems = read_sources([docs_folder])
    assert sorted(t.metadata["file"] for t in texts) == ["notes.txt", "pricing.html", "spot.md"]
    assert sorted(str(p).split(": ")[1] for p in problems) == ["cannot read as UTF-8 text", "empty text"]
    html = next(t for t in texts if t.metadata["file"] == "pricing.html").text
    assert html == "# Pricing\n\nInference endpoints are billed per instance-second, even when idle."


def test_html_to_text_drops_scripts_and_keeps_structure():
    text = html_to_text("<h2>A</h2><ul><li>one</li><li>two &amp; three</li></ul><script>x()</script>")
    assert text == "## A\n\none\n\ntwo & three"


def test_missing_path_is_a_problem(tmp_path):
    texts, problems = read_sources([tmp_path / "nope"])
    assert texts == [] and str(problems[0]).endswith("no such file or folder")


def test_no_chunk_exceeds_the_model_window_and_nothing_is_lost(tokens, docs_folder):
    texts, _ = read_sources([docs_folder, DEFAULT_KNOWLEDGE_BASE])
    chunks = chunk_documents(texts, tokens, ChunkSettings(200, 32))
    assert max(tokens.count(c.text) for c in chunks) <= 200  # the model reads 254 + [CLS] + [SEP]
    for text in texts:
        covered = " ".join(c.text for c in chunks if c.metadata["source"] == text.source and _same_record(c, text))
        missing = set(re.findall(r"\w+", text.text)) - set(re.findall(r"\w+", covered))
        assert not missing, (text.source, sorted(missing)[:5])


def _same_record(chunk, text) -> bool:
    return all(chunk.metadata.get(k) == text.metadata.get(k) for k in ("row", "line", "file"))


def test_headings_start_chunks_and_name_their_section(tokens, docs_folder):
    texts, _ = read_sources([docs_folder / "spot.md"])
    chunks = chunk_documents(texts, tokens, ChunkSettings(120, 24))
    assert chunks[0].text.startswith("# Spot training") and chunks[0].metadata["section"] == "Spot training"
    checkpoint_chunks = [c for c in chunks if c.metadata.get("section") == "Checkpoints"]
    assert checkpoint_chunks[0].text.startswith("## Checkpoints")
    assert len(checkpoint_chunks) >= 4  # the long paragraph is cut into windows
    assert [c.metadata["chunk"] for c in chunks] == list(range(len(chunks)))


def test_long_paragraphs_overlap_between_windows(tokens):
    paragraph = " ".join(f"word{n}" for n in range(600))
    pieces = [text for text, _ in chunk_text(paragraph, tokens, ChunkSettings(100, 20))]
    assert len(pieces) > 3
    for first, second in zip(pieces, pieces[1:], strict=False):
        tail = first.split()[-3:]
        assert " ".join(tail) in second  # the next window starts inside the previous one


def test_chunk_ids_are_stable_and_distinct(tokens, docs_folder):
    texts, _ = read_sources([docs_folder, DEFAULT_KNOWLEDGE_BASE])
    first = chunk_documents(texts, tokens)
    again = chunk_documents(texts, tokens)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    assert chunk_id("a", 0, "x") != chunk_id("a", 1, "x") != chunk_id("b", 0, "x")


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (300, 10), (100, 100)])
def test_invalid_chunk_settings_are_refused(size, overlap):
    with pytest.raises(ValueError, match="chunk"):
        ChunkSettings(size, overlap)


def test_text_the_tokenizer_barely_sees_is_still_cut_into_bounded_chunks(tokens):
    """MiniLM reads an unbroken run of over 100 characters as one [UNK] and drops accents and
    control characters, so a token budget alone let one chunk grow to hundreds of kilobytes
    (stored whole in the index, over Pinecone's 40 KB of metadata a record)."""
    accents = "a" + "\u0301" * 100_000
    blob = "x" * 300_000
    long_heading = "H" * 1_000
    text = f"# Intro\n\nShort start.\n\n{accents} word\n\n{blob}\n\n# {long_heading}\n\nThe end."
    chunks = chunk_text(text, tokens)
    assert max(len(chunk) for chunk, _ in chunks) <= MAX_CHUNK_CHARS
    assert all(len(section) <= MAX_SECTION_CHARS for _, section in chunks)
    joined = "".join(chunk for chunk, _ in chunks)
    assert joined.count("x") >= 300_000 and joined.count("\u0301") >= 100_000  # cut, never dropped
    assert long_heading in joined.replace("\n", "") and chunks[-1][0].endswith("The end.")
    assert chunks[0] == ("# Intro\n\nShort start.", "Intro")


def test_ordinary_prose_is_not_cut_by_the_character_bound(tokens, docs_folder):
    texts, _ = read_sources([docs_folder, DEFAULT_KNOWLEDGE_BASE])
    bounded = chunk_documents(texts, tokens)
    assert max(len(c.text) for c in bounded) < MAX_CHUNK_CHARS / 2  # the bound is far from real text


def test_records_that_cannot_be_stored_are_problems_named_by_their_file_line(tmp_path):
    jsonl = tmp_path / "kb.jsonl"
    jsonl.write_text('{"text": "ok \\ud800 broken"}\n{"text": "Spot saves money."}\n')
    faq = tmp_path / "faq.csv"
    faq.write_text('What is X?,"X is\na thing."\n' + "Q" * 13_000 + ",A long title's row.\n")  # row 1, line 3
    texts, problems = read_sources([jsonl, faq])
    assert [t.text for t in texts] == ["Spot saves money.", "What is X?\nX is\na thing."]
    assert [str(p) for p in problems] == [
        f"{jsonl}:1: broken Unicode (a lone surrogate such as \\ud800): fix the text",
        f"{faq}:3: its metadata fields take 13,020 bytes, the largest 'title'; a record's fields may hold "
        "12,288 (a Pinecone record holds 40,960 with the chunk's text): choose another title column with "
        "--csv-title-column, or none",
    ]
    assert all(p.id_prefix for p in problems)  # --sync keeps what these files stored before


def test_a_long_heading_is_not_repeated_over_every_window(tokens):
    """A heading of nearly the target's tokens left windows a step of one token: 3,000
    characters made 2,968 chunks, each repeating the heading."""
    heading = "# " + "".join(chr(0x4E00 + 7 * i) for i in range(170))
    body = "".join(chr(0x4E00 + 13 * i % 3000) for i in range(3000))
    chunks = chunk_text(heading + "\n\n" + body, tokens)
    assert len(chunks) < 25 and sum(len(c) for c, _ in chunks) < 2 * len(heading + body)


def test_a_comment_in_a_code_block_is_not_a_heading(tokens):
    text = "# Setup\n\n```bash\n# install first\npip install ragchat\n```\n\nThen serve."
    assert chunk_text(text, tokens) == [(text, "Setup")]


def test_backticks_indented_four_spaces_are_code_not_a_fence(tokens):
    """CommonMark: a fence is indented at most three spaces. At a paragraph's start the indent
    was stripped before the check, so the backticks opened a fence and hid the next heading."""
    text = "# Setup\n\n    ```\n    literal backticks\n\n# Serve\n\nRun it."
    assert [section for _, section in chunk_text(text, tokens, ChunkSettings(20, 0))] == ["Setup", "Serve"]


def test_windows_cut_between_words_stay_within_the_model_window_and_keep_every_character(tokens):
    import base64
    import random

    blob = base64.b64encode(random.Random(3).randbytes(3000)).decode()  # re-tokenized mid-word, a window grew
    for size, overlap in ((254, 32), (200, 32), (50, 10)):
        assert max(tokens.count(c) for c, _ in chunk_text(blob, tokens, ChunkSettings(size, overlap))) <= size
    text = " ".join(["word"] * 300) + " cafe\u0301"  # a combining accent after the last token
    assert chunk_text(text, tokens, ChunkSettings(100, 0))[-1][0].endswith("cafe\u0301")
    assert "".join(c for c, _ in chunk_text(text, tokens, ChunkSettings(100, 0))).replace(" ", "") == text.replace(
        " ", ""
    )


def test_each_paragraph_is_tokenized_once(tokens):
    """Re-counting the growing chunk for every paragraph made many short paragraphs slow."""
    calls = []

    class Counting:
        def count(self, text):
            calls.append(text)
            return tokens.count(text)

        def windows(self, text, size, overlap):
            return tokens.windows(text, size, overlap)

    text = "\n\n".join(f"Line {n} of the notes." for n in range(500))
    chunks = chunk_text(text, Counting())
    assert len(calls) == 500 and len(chunks) > 5


def test_field_names_count_and_are_checked_too(tmp_path):
    many_keys = {"text": "Spot saves money.", **{f"k{i:03d}" + "x" * 100: 1 for i in range(400)}}
    path = tmp_path / "kb.jsonl"
    path.write_text(json.dumps(many_keys) + "\n" + '{"text": "ok", "\\ud800": "v"}\n')
    texts, problems = read_sources([path])
    assert texts == [] and [p.where for p in problems] == [f"{path}:1", f"{path}:2"]
    assert "the largest 'k000" in problems[0].message and "lone surrogate" in problems[1].message


def test_the_largest_record_ingest_allows_fits_a_pinecone_record(tokens):
    """The readers' 12,288 bytes of fields and the chunker's 4,000 characters, at their worst
    (every character JSON-escaped to 6 bytes), with the longest section and source name."""
    from ragchat.aws.pinecone_index import MAX_METADATA_BYTES, json_size, oversized_records
    from ragchat.ingest.sources import MAX_FIELDS_BYTES as FIELDS_BYTES
    from ragchat.interfaces import Document

    fields = {"title": "\x01" * ((FIELDS_BYTES - 12) // 6)}
    assert FIELDS_BYTES - 10 <= json_size(fields) <= FIELDS_BYTES
    text = "# " + "\x02" * MAX_SECTION_CHARS + "\n" + "\x03" * (MAX_CHUNK_CHARS - MAX_SECTION_CHARS - 3)
    metadata = {**fields, "source": "\x04" * 512, "chunk": 10**6, "section": "\x02" * MAX_SECTION_CHARS, "line": 10**6}
    worst = Document("a" * 512, text, metadata)
    assert oversized_records([worst]) == [] and json_size({**metadata, "text": text}) > MAX_METADATA_BYTES * 0.9


def test_a_heading_too_long_to_repeat_still_starts_its_section(tokens):
    text = (
        "# Pricing\n\nSpot saves money.\n\n"
        "## Configuring SageMaker Serverless Inference endpoint autoscaling policies\n\nSet the max concurrency to 10."
    )
    chunks = chunk_text(text, tokens, ChunkSettings(50, 10))
    assert [section for _, section in chunks] == [
        "Pricing",
        "Configuring SageMaker Serverless Inference endpoint autoscaling policies",
    ]


@pytest.mark.parametrize(
    ("text", "sections"),
    [
        ("# A\n\n```pip install x``` installs it.\n\n# B\n\nbody b", ["A", "B"]),  # inline code, not a fence
        ("# A\n\n```\n~~~\n# not a heading\n```\n\n# B\n\nbody b", ["A", "B"]),  # ~~~ does not close ```
        ("# A\n\n````\n```\n# inner\n````\n\n# B\n\nbody b", ["A", "B"]),  # a shorter fence does not close
        ("# A\n\n```\n# open to the end\n\n# C\n\nbody", ["A"]),  # unclosed: code to the end (CommonMark)
    ],
)
def test_fenced_code_follows_commonmark(tokens, text, sections):
    assert [section for _, section in chunk_text(text, tokens)] == sections


def test_a_line_json_cannot_read_is_a_problem_and_the_rest_is_read(tmp_path):
    """Only JSONDecodeError was caught: 100,000 nested brackets (RecursionError) or a
    5,000-digit number (ValueError) ended the run with a traceback, nothing ingested."""
    jsonl = tmp_path / "deep.jsonl"
    lines = ['{"text": "first"}', "[" * 100_000, '{"text": "n", "n": ' + "9" * 5000 + "}", '{"text": "last"}',
             '{"text": "nan", "n": NaN}', '{"text": "inf", "n": 1e999}']  # fmt: skip
    jsonl.write_text("\n".join(lines) + "\n")
    texts, problems = read_sources([jsonl])
    assert [t.text for t in texts] == ["first", "last"]
    assert [p.where for p in problems] == [f"{jsonl}:{n}" for n in (2, 3, 5, 6)]
    assert "not a finite number" in problems[-1].message  # it was stored, then every answer citing it was a 500


def test_a_long_csv_field_is_read_not_the_whole_file_skipped(tmp_path):
    faq = tmp_path / "faq.csv"
    faq.write_text("Short?,Yes.\n" + "Long?," + "word " * 40_000 + "\n")  # 200 KB in one field
    texts, problems = read_sources([faq], CsvOptions(title_column=None))
    assert problems == [] and len(texts) == 2 and len(texts[1].text) > 131_072


def test_a_very_long_paragraph_is_tokenized_in_bounded_segments(tokens):
    """A 20 MB log with no blank line was tokenized at once: 2.9 GB of offsets held in memory."""
    from ragchat.ingest.chunking import SEGMENT_CHARS

    longest = []

    class Measuring:
        def count(self, text):
            longest.append(len(text))
            return tokens.count(text)

        def windows(self, text, size, overlap):
            longest.append(len(text))
            return tokens.windows(text, size, overlap)

    words = [f"event{n} " for n in range(60_000)]  # about 500 KB, one paragraph
    chunks = chunk_text("".join(words), Measuring())
    assert max(longest) <= SEGMENT_CHARS
    assert set(re.findall(r"event\d+", " ".join(text for text, _ in chunks))) == {w.strip() for w in words}
    assert max(tokens.count(text) for text, _ in chunks) <= ChunkSettings().target_tokens
