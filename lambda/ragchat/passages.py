"""Condensing a long source to the sentences a question needs.

A tight context budget (a small local model's 256 tokens, flan-t5's 512) holds two or three
whole FAQ rows; condensed, it holds four or five, so a relevant row ranked fourth still
reaches the prompt. A source keeps its title (an FAQ row's question, a markdown heading),
then the sentences sharing the most words with what was looked up, in their own order. Plain
string work: no model and no numpy, so the Lambda condenses exactly as the local service does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .retrieval import terms

# Where a sentence ends: after . ! ? and space, before anything but a lower-case Latin letter
# (so other alphabets split too), or right after a CJK full stop.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^\W_a-z]|[\"'(])|(?<=[。！？])")
# A piece ending like this is an abbreviation, not a sentence: the next piece joins it.
ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|vs|approx|incl|fig|figs|dr|mr|mrs|ms|cf|al|no|nos|v)|(?:^|\s)[A-Za-z](?:\.[A-Za-z])*)\.$",
    re.IGNORECASE,
)
HEADING = re.compile(r"^#{1,6}\s+\S")
FENCE = "```"
WORDY = re.compile(r"\w")
# Past this many pieces the rest of a text is not considered (a hostile document of 100,000
# one-character "sentences" would otherwise cost a tokenizer call each).
MAX_PIECES = 256
# Less room than this and a source is not condensed at all: a title and a scrap of a sentence.
MIN_PASSAGE_TOKENS = 24
# What joining a piece costs beyond its own tokens: the space or newline (`context.select_context`
# trims a condensed text that a tokenizer counts over its room).
JOIN_COST = 1
ELLIPSIS = "…"


@dataclass(frozen=True)
class Piece:
    """A sentence, a line without sentence ends, or a whole fenced code block."""

    index: int
    line: int
    text: str


def _split_line(line: str) -> list[str]:
    """A line's sentences, at most MAX_PIECES (parts are grouped first and joined once: a
    line of 100,000 "A." would otherwise be rebuilt at every part)."""
    groups: list[list[str]] = []
    for part in SENTENCE_END.split(line):
        part = part.strip()
        if not part:
            continue
        if groups and ABBREVIATION.search(groups[-1][-1]):
            groups[-1].append(part)
        elif len(groups) < MAX_PIECES:
            groups.append([part])
        else:
            break
    return [" ".join(group) for group in groups]


def pieces(text: str) -> list[Piece]:
    """The text's sentences in order, each with its line number; a fenced code block stays
    one piece (half a block would leave an unmatched fence in the prompt); pieces without a
    letter or digit (rules, stray punctuation) are left out."""
    found: list[tuple[int, str]] = []
    block: list[str] = []
    block_line = 0
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if block:
            block.append(line.rstrip())
            if stripped.startswith(FENCE):
                found.append((block_line, "\n".join(block)))
                block = []
            continue
        if stripped.startswith(FENCE):
            block, block_line = [stripped], number
            continue
        found.extend((number, s) for s in _split_line(stripped) if WORDY.search(s))
        if len(found) >= MAX_PIECES:
            break
    if block:
        found.append((block_line, "\n".join(block)))
    return [Piece(i, line, s) for i, (line, s) in enumerate(found[:MAX_PIECES])]


def sentences(text: str) -> list[str]:
    return [p.text for p in pieces(text)]


def is_title(first: Piece, text: str) -> bool:
    """Whether a text's first piece names what the text is about: a markdown heading, or a
    whole first line that asks a question (an FAQ row's). A chunk that starts mid-paragraph
    gets no title: its first sentence competes like the others."""
    first_line = text.lstrip().split("\n", 1)[0].strip()
    return first.line == 0 and (
        bool(HEADING.match(first.text)) or (first.text == first_line and first_line.endswith("?"))
    )


def joined(chosen: Sequence[Piece]) -> str:
    """Pieces put back as they stood: a space within a line, a newline between lines. Gaps
    are not marked: with "… " where sentences were left out, SmolLM2's answers looped more
    and were grounded less often (README, "Long sources are condensed")."""
    out = ""
    for i, piece in enumerate(chosen):
        out += piece.text if i == 0 else (" " if piece.line == chosen[i - 1].line else "\n") + piece.text
    return out


def condense(text: str, query: str, limit: int, count: Callable[[str], int]) -> str:
    """`text` in at most `limit` tokens: its title, then its pieces sharing the most words
    with `query` (ties: the earlier). When the best-matching piece does not fit whole it is
    cut to the room left rather than passed over for pieces that share nothing. "" when
    `limit` is below `MIN_PASSAGE_TOKENS`."""
    if limit < MIN_PASSAGE_TOKENS:
        return ""
    parts = pieces(text)
    head = parts[:1] if parts and is_title(parts[0], text) else []
    rest = parts[len(head) :]
    wanted = set(terms(query))
    overlap = [len(wanted & set(terms(p.text))) for p in rest]
    used = count(head[0].text) if head else 0
    chosen: list[Piece] = []
    relevant_placed = False
    for i in sorted(range(len(rest)), key=lambda i: (-overlap[i], i)):
        join = JOIN_COST if head or chosen else 0
        cost = count(rest[i].text) + join
        if used + cost <= limit:
            chosen.append(rest[i])
            used += cost
            relevant_placed = relevant_placed or overlap[i] > 0
            continue
        room = limit - used - join
        if (overlap[i] > 0 and not relevant_placed) or not chosen:
            if room >= MIN_PASSAGE_TOKENS // 3:
                chosen.append(Piece(rest[i].index, rest[i].line, trim_to_count(rest[i].text, room, count)))
            break
    if not chosen:  # nothing but (perhaps) a title would fit: the text's start, trimmed
        return trim_to_count(text.strip(), limit, count)
    return joined(head + sorted(chosen, key=lambda p: p.index))


def trim_to(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def trim_to_count(text: str, limit: int, count: Callable[[str], int]) -> str:
    """The longest `trim_to` cut of `text` that counts at most `limit` (binary search on
    its length in characters, since a token count is not additive)."""
    if count(text) <= limit:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count(trim_to(text, middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return trim_to(text, low)
