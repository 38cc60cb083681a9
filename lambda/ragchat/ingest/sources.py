"""Readers for the knowledge-base formats: CSV (column selection), JSONL (a text field and
metadata fields), and folders of Markdown, text, HTML and PDF files.

Bad input never stops a run: each unreadable file, malformed row or empty text becomes a
`Problem` naming file and line, and the rest is read."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
# A record's metadata fields (title, JSONL fields) may take this much of Pinecone's 40,960 bytes a record;
# the rest is for the chunk's text (at most 4,000 characters), its section and its source.
MAX_FIELDS_BYTES = 12_288
MAX_CSV_FIELD_CHARS = 16 * 1024 * 1024  # a field this long is chunked like any text; longer ones fail the file
MAX_TITLE_CHARS = 300  # a PDF's /Title beyond this is cut (`short_title`)
METADATA_HINTS = {
    ".csv": "choose another title column with --csv-title-column, or none",
    ".jsonl": "leave it out with --metadata-fields",
    ".ndjson": "leave it out with --metadata-fields",
}
READABLE_SUFFIXES = TEXT_SUFFIXES | {".csv", ".jsonl", ".ndjson", ".pdf"}


@dataclass(frozen=True)
class SourceText:
    """One document as read: where it came from, its text, and its metadata."""

    source: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    folder: str = ""  # "docs/" when read from a folder given as `docs`: the start of its chunks' ids
    place: str = ""  # where a message about it points: "kb.jsonl:3", "faq.csv:4", "guide.pdf:page 2"


@dataclass(frozen=True)
class Problem:
    where: str  # "file" or "file:line"
    message: str
    id_prefix: str = ""  # the id prefix of the file's chunks ("docs/b.md#"): `--sync` keeps them

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class CsvOptions:
    """Columns by 0-based index, or by name when the file has a header row. The FAQ's
    defaults: no header, question and answer as one text, the question as title."""

    text_columns: Sequence[str] = ("0", "1")
    title_column: str | None = "0"
    header: bool = False


@dataclass(frozen=True)
class JsonlOptions:
    text_field: str = "text"
    metadata_fields: Sequence[str] | None = None  # None: every other scalar field


def read_sources(
    paths: Sequence[Path], csv_options: CsvOptions = CsvOptions(), jsonl_options: JsonlOptions = JsonlOptions()
) -> tuple[list[SourceText], list[Problem]]:
    texts: list[SourceText] = []
    problems: list[Problem] = []
    for path in paths:
        if not path.exists():
            problems.append(Problem(printable(path), "no such file or folder"))
            continue
        files = folder_files(path, problems) if path.is_dir() else [path]
        try:
            folder = id_scope(path) if path.is_dir() else ""
        except UnicodeEncodeError:
            problems.append(Problem(printable(path), "the folder name is not UTF-8: rename the folder"))
            continue
        for file in files:
            name = source_name(file, path)
            suffix = file.suffix.lower()
            if suffix in READABLE_SUFFIXES and (problem := _id_problem(file, name, folder)):
                problems.append(problem)
                continue
            if suffix == ".csv":
                reader = _read_csv(file, name, csv_options, problems)
            elif suffix in (".jsonl", ".ndjson"):
                reader = _read_jsonl(file, name, jsonl_options, problems)
            elif suffix in TEXT_SUFFIXES:
                reader = _read_text_file(file, name, problems)
            elif suffix == ".pdf":
                reader = _read_pdf(file, name, problems)
            else:
                if not path.is_dir():
                    problems.append(Problem(str(file), f"unsupported file type {suffix or '(none)'}"))
                continue
            before = len(problems)
            for text in reader:
                if problem := _record_problem(file, text):
                    problems.append(problem)
                else:
                    texts.append(replace(text, folder=folder))
            problems[before:] = [replace(p, id_prefix=id_prefix(name, folder)) for p in problems[before:]]
    return texts, problems


def folder_files(folder: Path, problems: list[Problem]) -> list[Path]:
    """The files under `folder`, sorted, walked without recursion (a folder thousands of levels
    deep is read like any other). Linked folders are not entered, and a linked file is read only
    when it lies inside `folder`: a downloaded repository or unpacked archive can carry a link to
    `~/.aws/credentials` or `/proc/self/environ`, whose text would reach every caller."""
    root = folder.resolve()
    files: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            problems.append(Problem(printable(current), f"cannot list the folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.is_symlink() and (target := path.resolve()).is_file():
                    if target.is_relative_to(root):
                        files.append(path)
                    else:
                        problems.append(Problem(printable(path), "a link to a file outside the folder"))
                elif entry.is_file(follow_symlinks=False):
                    files.append(path)
            except (OSError, RuntimeError):  # a link loop, or a target that cannot be examined
                continue
    return sorted(files)


def _record_problem(file: Path, text: SourceText) -> Problem | None:
    """Why a record read from `file` cannot be stored as is, or None: text that is not valid
    Unicode (a lone surrogate, from a JSON escape such as \\ud800), or metadata too large to
    go with a chunk into a Pinecone record."""
    from ..aws.pinecone_index import MAX_METADATA_BYTES, json_size

    where = text.place or str(file)
    try:
        text.text.encode()
        size = json_size(text.metadata)
    except UnicodeEncodeError:
        return Problem(where, "broken Unicode (a lone surrogate such as \\ud800): fix the text")
    if size > MAX_FIELDS_BYTES:
        largest = max(text.metadata, key=lambda k: json_size(text.metadata[k]))
        hint = METADATA_HINTS.get(file.suffix.lower(), "shorten it")
        return Problem(
            where,
            f"its metadata fields take {size:,} bytes, the largest {largest!r}; a record's fields may hold "
            f"{MAX_FIELDS_BYTES:,} (a Pinecone record holds {MAX_METADATA_BYTES:,} with the chunk's text): {hint}",
        )
    return None


def id_scope(given: Path) -> str:
    """The start of the id of every chunk read from a path given to `ragchat ingest`: the
    folder's name and "/" ("docs/spot.md#..."), or the file's name and "#" ("faq.pdf#..."),
    names escaped (`escape_id_part`). `--sync` lists the index's ids by this prefix
    (Pinecone's `list` takes a prefix), so it only ever deletes what came from the paths it
    was given. Raises UnicodeEncodeError for a name that is not UTF-8."""
    from .chunking import escape_id_part

    return f"{escape_id_part(given.resolve().name)}/" if given.is_dir() else f"{escape_id_part(given.name)}#"


def id_prefix(source: str, folder: str) -> str:
    from .chunking import id_prefix as prefix

    return prefix(source, folder)


def printable(path: Path) -> str:
    """A path for messages: bytes that are not UTF-8 shown as \\xff rather than failing."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _id_problem(file: Path, name: str, folder: str) -> Problem | None:
    """Why the file's chunks could get no valid id (a Pinecone id is ASCII, at most 512
    characters), or None."""
    from .chunking import DIGEST_CHARS, MAX_ID_CHARS

    try:
        prefix = id_prefix(name, folder)
    except UnicodeEncodeError:
        return Problem(printable(file), "the file name is not UTF-8: rename the file")
    if len(prefix) + DIGEST_CHARS > MAX_ID_CHARS:  # chunks an older version wrote under it are kept
        message = f"the folder and file name make an id longer than {MAX_ID_CHARS} characters"
        return Problem(str(file), message, id_prefix=prefix)
    return None


def source_name(file: Path, given: Path) -> str:
    """What a document's `source` says: the file's path relative to the folder given, or
    its name when a file was given. Sources reach every caller (in `sources` of each
    answer), so they never carry where the files lay on the machine that ingested them."""
    return file.relative_to(given).as_posix() if given.is_dir() else file.name


def _read_csv(path: Path, name: str, options: CsvOptions, problems: list[Problem]) -> Iterator[SourceText]:
    rows: list[tuple[int, list[str]]] = []  # (the line the row starts on, its fields)
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)  # the module's 131,072 made one long field skip the whole file
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            start = 1
            for row in reader:
                rows.append((start, row))
                start = reader.line_num + 1  # quoted fields may span lines
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(Problem(str(path), f"cannot read: {exc}"))
        return
    header: list[str] = []
    if options.header and rows:
        header, rows = rows[0][1], rows[1:]

    def column(name: str) -> int:
        if name.isdigit():
            return int(name)
        if name in header:
            return header.index(name)
        raise ValueError(f"no column {name!r} (columns: {', '.join(header) or 'none: the file has no header'})")

    try:
        text_columns = [column(c) for c in options.text_columns]
        title_column = column(options.title_column) if options.title_column is not None else None
    except ValueError as exc:
        problems.append(Problem(str(path), str(exc)))
        return
    for offset, (line, row) in enumerate(rows):
        where = f"{path}:{line}"
        if len(row) <= max(text_columns):
            problems.append(Problem(where, f"expected at least {max(text_columns) + 1} columns, found {len(row)}"))
            continue
        parts = [row[i].strip() for i in text_columns]
        text = "\n".join(p for p in parts if p)
        if not text:
            problems.append(Problem(where, "empty text"))
            continue
        metadata: dict[str, Any] = {"row": offset}
        if title_column is not None and title_column < len(row) and row[title_column].strip():
            metadata["title"] = row[title_column].strip()
        yield SourceText(name, text, metadata, place=where)


def _read_jsonl(path: Path, name: str, options: JsonlOptions, problems: list[Problem]) -> Iterator[SourceText]:
    try:
        # JSON lines end at "\n" only: U+2028, U+0085 and the like are valid inside a JSON string
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot read: {exc}"))
        return
    for number, line in enumerate(lines, 1):
        line = line.lstrip("\x1e")  # RFC 7464 JSON text sequences start each record with RS
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"not valid JSON: {exc.msg}"))
            continue
        except (RecursionError, ValueError) as exc:  # nesting too deep, an integer of over 4,300 digits
            problems.append(Problem(where, f"not readable JSON: {type(exc).__name__}: {str(exc)[:120]}"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(where, "expected a JSON object"))
            continue
        text = record.get(options.text_field)
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(where, f"no text in field {options.text_field!r}"))
            continue
        names = options.metadata_fields
        if names is None:
            names = [
                k for k, v in record.items() if k != options.text_field and isinstance(v, str | int | float | bool)
            ]
        metadata = {k: record[k] for k in names if k in record and record[k] is not None}
        if infinite := [k for k, v in metadata.items() if isinstance(v, float) and not math.isfinite(v)]:
            # JSON cannot carry NaN or Infinity: every answer citing the record would fail to serialize
            message = f"field {infinite[0]!r} is not a finite number (NaN or Infinity): fix it, or leave it out"
            problems.append(Problem(where, f"{message} with --metadata-fields"))
            continue
        metadata["line"] = number
        yield SourceText(name, text.strip(), metadata, place=where)


def _read_text_file(path: Path, name: str, problems: list[Problem]) -> Iterator[SourceText]:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot read as UTF-8 text: {exc}"))
        return
    if "\x00" in raw:  # valid UTF-8, but no text file holds NUL bytes
        problems.append(Problem(str(path), "binary content (NUL bytes), not text"))
        return
    text = html_to_text(raw) if path.suffix.lower() in (".html", ".htm") else raw
    text = re.sub(r"\r\n?", "\n", text).strip()
    if not text:
        problems.append(Problem(str(path), "empty text"))
        return
    yield SourceText(name, text, {"file": path.name})


def _read_pdf(path: Path, name: str, problems: list[Problem]) -> Iterator[SourceText]:
    """One text per page, so each source names its page. A page without a text layer
    (a scan) is reported rather than guessed at: OCR is out of scope."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its repair notes are noise; failures are Problems
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            problems.append(Problem(str(path), "encrypted: save a copy without a password and ingest that"))
            return
        pages = list(reader.pages)
        title = short_title(str((reader.metadata or {}).get("/Title") or ""))
    except (OSError, PdfReadError, ValueError) as exc:
        problems.append(Problem(str(path), f"cannot read as PDF: {exc}"))
        return
    without_text: list[int] = []
    for number, page in enumerate(pages, 1):
        try:
            text = pdf_page_text(page.extract_text() or "")
        except Exception as exc:  # pypdf raises many types on a malformed page; the others are still read
            problems.append(Problem(f"{path}:page {number}", f"cannot extract text: {exc}"))
            continue
        if not text:
            without_text.append(number)
            continue
        metadata: dict[str, Any] = {"file": path.name, "page": number}
        if title:
            metadata["title"] = title
        yield SourceText(name, text, metadata, place=f"{path}:page {number}")
    if without_text:
        pages_named = ", ".join(map(str, without_text))
        problems.append(Problem(str(path), f"no text on page(s) {pages_named} (scanned images? OCR them first)"))


def short_title(title: str) -> str:
    """A document's own title, cut to MAX_TITLE_CHARS at a word: a title is a label shown with
    each source and kept first when a source is condensed, and a PDF's /Title is whatever the
    producing tool wrote (sometimes the whole first page)."""
    title = " ".join(title.split())
    if len(title) <= MAX_TITLE_CHARS:
        return title
    cut = title[: MAX_TITLE_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def pdf_page_text(text: str) -> str:
    """A page's extracted text with words broken across lines rejoined and spacing tidied;
    line breaks stay, since the chunker reads paragraphs from them."""
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text.replace("\r\n", "\n"))
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


HTML_BLOCKS = {"p", "div", "section", "article", "li", "tr", "br", "pre", "blockquote", "table", "ul", "ol"}
HTML_HEADINGS = {f"h{level}" for level in range(1, 7)}
# never shown: scripts and styles, fallbacks for what the browser does run, an SVG's labels
HTML_SKIPPED = {"script", "style", "noscript", "template", "head", "iframe", "noframes", "noembed", "svg"}
HIDDEN_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0*\.?0*\s*(?:$|;|!)"
    r"|font-size\s*:\s*0*\.?0*(?:px|em|rem|pt|%)?\s*(?:$|;|!))",
    re.IGNORECASE,
)
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def html_to_text(html: str) -> str:
    """Visible text, with headings as Markdown headings and blocks as paragraphs, so the
    chunker sees the same structure as in a Markdown file. Elements marked as not shown are
    left out (`hidden`, a closed `<dialog>`, an inline `display: none`, `visibility: hidden`,
    `opacity: 0` or `font-size: 0`, iframe and SVG fallbacks): a page's invisible text is
    where injected instructions hide. Text hidden by a stylesheet or by positioning is not
    detected. lxml parses in linear time whatever the markup (the standard library's parser is
    quadratic on unclosed tags, CVE-2025-6069: 60 KB took 33 s), with `huge_tree` so that a
    10 MB `<pre>` log or markup nested over 255 levels deep is read whole."""
    from lxml import etree
    from lxml import html as lxml_html

    try:
        parser = lxml_html.HTMLParser(encoding="utf-8", huge_tree=True)
        root = lxml_html.document_fromstring(html.encode("utf-8"), parser=parser)
    except etree.ParserError:  # nothing but whitespace, comments or an unclosed comment
        return ""
    parts: list[str] = []
    walker = etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""  # comments and processing instructions
        if event == "start" and (tag in HTML_SKIPPED or _hidden(element)):
            walker.skip_subtree()
        elif event == "start":
            if tag in HTML_HEADINGS:
                parts.append("\n\n" + "#" * int(tag[1]) + " ")
            elif tag in HTML_BLOCKS:
                parts.append("\n\n")
            parts.append(_spaced(element.text))
        if event == "end" and (tag in HTML_BLOCKS or tag in HTML_HEADINGS):
            parts.append("\n\n")
        if event in ("end", "comment", "pi"):
            parts.append(_spaced(element.tail))
    paragraphs = [re.sub(r"[ \t]+", " ", p).strip() for p in re.split(r"\n\s*\n", "".join(parts))]
    return "\n\n".join(p for p in paragraphs if p)


def _spaced(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "")


def _hidden(element: Any) -> bool:
    """`aria-hidden` text is shown (only screen readers skip it), and so is `hidden="until-found"`
    (a browser's find reveals it); both are kept."""
    hidden = element.get("hidden")
    return (
        (hidden is not None and hidden.strip().lower() != "until-found")
        or (element.tag == "dialog" and element.get("open") is None)
        or bool(HIDDEN_STYLE.search(CSS_COMMENT.sub("", element.get("style") or "")))
    )
