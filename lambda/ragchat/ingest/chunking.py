"""Chunking by the embedding model's tokens, along the text's own structure.

all-MiniLM-L6-v2 reads at most 256 word pieces ([CLS] and [SEP] included) and silently
ignores the rest, so no chunk may be longer. Paragraphs are packed into chunks up to the
target size; a heading always starts a new chunk (and names its section); a paragraph too
long on its own is cut into token windows that overlap. Consecutive chunks of a section
share their boundary paragraph when it is short, so a fact split across them is found.

Characters are bounded too: the tokenizer reads an unbroken run of over 100 characters as one
[UNK] and drops accents and control characters, so a token budget alone lets a few tokens
carry hundreds of kilobytes, all stored with the chunk (Pinecone keeps at most 40 KB of
metadata a record)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..interfaces import Document
from .sources import SourceText

MODEL_MAX_TOKENS = 256
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
# 200 tokens of prose are about 1,000 characters; 4,000 characters of any text stay under
# Pinecone's 40,960 bytes of metadata even at 6 bytes a character (a JSON-escaped control character).
MAX_CHUNK_CHARS = 4_000
MAX_SECTION_CHARS = 200  # a longer "# ..." line is read as text, not as a heading
PIECE_CHARS = MAX_CHUNK_CHARS - MAX_SECTION_CHARS - 16  # room for the heading line a window repeats (6 + 8 + 1)
SHORT_TAIL_CHARS = 500  # a boundary paragraph repeated in the next chunk is at most this long
# A longer paragraph (a log, minified text) is tokenized in segments of this size: tokenizing 20 MB of
# text at once held 2.9 GB of offsets; a segment's windows do not overlap the next segment's
SEGMENT_CHARS = 65_536
NON_SPACE = re.compile(r"\S")


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def windows(self, text: str, size: int, overlap: int) -> list[str]:
        """The text cut into spans of at most `size` tokens, each starting `size - overlap`
        tokens after the previous one."""
        ...


@dataclass(frozen=True)
class ChunkSettings:
    target_tokens: int = 200
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if not 0 < self.target_tokens <= MODEL_MAX_TOKENS - SPECIAL_TOKENS:
            raise ValueError(f"chunk size must be between 1 and {MODEL_MAX_TOKENS - SPECIAL_TOKENS} tokens")
        if not 0 <= self.overlap_tokens < self.target_tokens:
            raise ValueError("chunk overlap must be at least 0 and below the chunk size")


HEADING = re.compile(rf"^(#{{1,6}})\s{{1,8}}(.{{1,{MAX_SECTION_CHARS}}})$")


MAX_ID_CHARS = 512  # Pinecone's limit on a record id (which must also be ASCII without NUL)
DIGEST_CHARS = 32


def escape_id_part(name: str) -> str:
    """A file or folder name as it appears in a chunk id: printable ASCII stays, and "%", "#"
    and every other character become %XX of their UTF-8 bytes. So the one "#" of an id is the
    one before its digest, and no name is a prefix of another's ids ("notes.md#" never
    matches folder "notes.md#archive/"). Raises UnicodeEncodeError for a name that is not
    UTF-8 (lone surrogates from the file system)."""
    return "".join(c if " " <= c <= "~" and c not in "%#" else "".join(f"%{b:02X}" for b in c.encode()) for c in name)


def id_prefix(source: str, folder: str = "") -> str:
    """Everything of a chunk's id before its digest: "docs/spot.md#"."""
    return f"{folder}{escape_id_part(source)}#"


def chunk_id(source: str, position: int, text: str, folder: str = "") -> str:
    """Stable across runs: the same chunk of the same source gets the same id. It starts with
    where the chunk came from ("docs/spot.md#"), the prefix by which `--sync` finds it."""
    digest = hashlib.sha256(f"{source}\x00{position}\x00{text}".encode()).hexdigest()[:DIGEST_CHARS]
    return f"{id_prefix(source, folder)}{digest}"


def id_source(document_id: str) -> str:
    """The folder and source a chunk id names ("docs/spot.md", escaped as in the id); an id
    written by another tool (the built-in FAQ's) names none and is returned whole."""
    return document_id.rsplit("#", 1)[0]


def in_scope(document_id: str, scope: str) -> bool:
    """Whether this tool wrote the id for the path whose `id_scope` is `scope`: the id starts
    with it, holds exactly one "#" and ends with a digest. Ids from other tools, and those an
    older version wrote for names holding "#", are never claimed (so never deleted)."""
    return (
        document_id.startswith(scope)
        and document_id.count("#") == 1
        and re.fullmatch(f"[0-9a-f]{{{DIGEST_CHARS}}}", document_id.rsplit("#", 1)[1]) is not None
    )


FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def _fence(line: str, open_fence: str) -> str:
    """The fence open after `line` ("" outside code), given the one open before it: a fence
    opens with three or more backticks or tildes (backticks not followed by another backtick
    on the line, which is inline code) and closes with a bare line of the same character, at
    least as long (CommonMark)."""
    match = FENCE.match(line)
    if not match:
        return open_fence
    marks, rest = match.groups()
    if not open_fence:
        return "" if marks[0] == "`" and "`" in rest else marks
    closes = marks[0] == open_fence[0] and len(marks) >= len(open_fence) and not rest.strip()
    return "" if closes else open_fence


def _paragraphs(text: str) -> list[tuple[str, bool]]:
    """(paragraph, whether it is a heading line) in order. A `#` line inside a fenced code
    block is code (a shell comment), not a heading."""
    out: list[tuple[str, bool]] = []
    fence = ""
    for block in re.split(r"\n\s*\n", text):
        raw = [line.rstrip() for line in block.split("\n") if line.strip()]  # indents kept: they decide fences
        buffer: list[str] = []
        for number, indented in enumerate(raw):
            line = indented.lstrip() if number == 0 else indented  # the text keeps its own form
            inside = fence
            fence = _fence(indented, fence)
            if not inside and not fence and HEADING.match(line.strip()):
                if buffer:
                    out.append(("\n".join(buffer), False))
                    buffer = []
                out.append((line.strip(), True))
            else:
                buffer.append(line)
        if buffer:
            out.append(("\n".join(buffer), False))
    return out


def _bounded(span: str, limit: int = PIECE_CHARS) -> list[str]:
    """The span cut into pieces of at most `limit` characters, each at the last whitespace in
    its second half where there is one: text the tokenizer barely counts, or a paragraph too
    long to tokenize at once."""
    pieces = []
    start = 0  # an index, not a re-sliced remainder: cutting megabytes stays linear
    while len(span) - start > limit:
        end = start + limit
        cut = max(span.rfind(" ", start + limit // 2, end), span.rfind("\n", start + limit // 2, end))
        cut = cut if cut > 0 else end
        pieces.append(span[start:cut].rstrip())
        start = next_text.start() if (next_text := NON_SPACE.search(span, cut)) else len(span)
    rest = span[start:]
    return [*pieces, rest] if rest else pieces


def _segments(text: str) -> Iterator[tuple[str, bool]]:
    """The text's paragraphs, with those over SEGMENT_CHARS cut into segments."""
    for paragraph, is_heading in _paragraphs(text):
        if is_heading or len(paragraph) <= SEGMENT_CHARS:
            yield paragraph, is_heading
        else:
            yield from ((segment, False) for segment in _bounded(paragraph, SEGMENT_CHARS))


def chunk_text(text: str, counter: TokenCounter, settings: ChunkSettings = ChunkSettings()) -> list[tuple[str, str]]:
    """(chunk text, section heading or "") in order.

    Paragraphs are separated by blank lines, so a chunk's tokens are the sum of its
    paragraphs' (each is counted once and the sums kept: a long document costs linear time).
    A heading starts a chunk and names its section; it is repeated at the top of the windows
    of a long paragraph only when it takes at most a quarter of the target."""
    target, overlap = settings.target_tokens, settings.overlap_tokens
    chunks: list[tuple[str, str]] = []
    current: list[tuple[str, int]] = []  # (paragraph, its tokens)
    chars = tokens = 0  # of the current chunk, "\n\n" separators included
    section = ""
    opened: tuple[str, int] | None = None  # the heading that opened the current chunk, if short

    def start(paragraphs: list[tuple[str, int]]) -> None:
        nonlocal current, chars, tokens
        current = paragraphs
        chars = sum(len(p) for p, _ in paragraphs) + 2 * max(len(paragraphs) - 1, 0)
        tokens = sum(n for _, n in paragraphs)

    def fits(paragraph: str, size: int) -> bool:
        return chars + 2 + len(paragraph) <= MAX_CHUNK_CHARS and tokens + size <= target

    def flush(keep_tail: bool) -> None:
        if not current:
            return
        chunks.append(("\n\n".join(p for p, _ in current), section))
        tail = current[-1]
        short = len(tail[0]) <= SHORT_TAIL_CHARS and tail[1] <= overlap
        start([tail] if keep_tail and len(current) > 1 and short else [])

    def windows(paragraph: str, size: int, prefix: str = "", budget: int = target) -> None:
        spans = counter.windows(paragraph, budget, min(overlap, budget // 2)) if size > budget else [paragraph]
        chunks.extend((prefix + piece, section) for span in spans for piece in _bounded(span))

    for paragraph, is_heading in _segments(text):
        size = counter.count(paragraph)
        if is_heading:
            flush(keep_tail=False)
            section = HEADING.match(paragraph).group(2).strip()
            opened = (paragraph, size) if size <= max(target // 4, 1) else None
            if size > target:  # a heading of more tokens than a chunk holds is cut like a long paragraph
                windows(paragraph, size)
            else:
                start([(paragraph, size)])
            continue
        if size > target or len(paragraph) > PIECE_CHARS:
            heading = opened if current == [opened] else None
            if heading is None:
                flush(keep_tail=False)
            start([])
            windows(paragraph, size, heading[0] + "\n" if heading else "", target - (heading[1] if heading else 0))
            continue
        if current and not fits(paragraph, size):
            flush(keep_tail=True)
            if current and not fits(paragraph, size):
                start([])  # the kept boundary paragraph and this one do not fit together
        if current:
            current.append((paragraph, size))
            chars, tokens = chars + 2 + len(paragraph), tokens + size
        else:
            start([(paragraph, size)])
    flush(keep_tail=False)
    return chunks


def chunk_documents(
    texts: Sequence[SourceText], counter: TokenCounter, settings: ChunkSettings = ChunkSettings()
) -> list[Document]:
    documents = []
    for item in texts:
        for position, (text, section) in enumerate(chunk_text(item.text, counter, settings)):
            metadata = {**item.metadata, "source": item.source, "chunk": position}
            if section:
                metadata["section"] = section
            documents.append(
                Document(chunk_id(item.source, _position_key(item, position), text, item.folder), text, metadata)
            )
    return documents


def _position_key(item: SourceText, position: int) -> int:
    """A row or line of a multi-record file, or a PDF's page, is part of the position, so two
    records of one file never share an id."""
    record = item.metadata.get("row", item.metadata.get("line", item.metadata.get("page", 0)))
    return int(record) * 100_000 + position
