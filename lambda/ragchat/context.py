"""The context rule: which retrieved texts go into the prompt.

The original joined texts until the first one that did not fit in a 1000-character
budget and then stopped, so one long top hit left the context empty. Here a text that
does not fit is skipped (a later, shorter one may still fit), and the top hit is trimmed
rather than dropped, so retrieval that found something never yields an empty context.

The budget is counted in the chat model's tokens (`count` is its tokenizer, or the
characters-per-token estimate where none can run); with `count=len` and a separator of
two it is the original rule in characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from .interfaces import Match
from .prompts import ModelProfile
from .retrieval import terms

SEPARATOR_COST = 2  # each text counts its length + 2, as in the original rule
ELLIPSIS = "…"
# The context never gets less than this, however long a reply was asked for: the top hit,
# trimmed, still goes in (the model server refuses or truncates a prompt past its window).
MIN_CONTEXT_TOKENS = 64
# One source takes at most this share of the budget: past it, it is condensed to the sentences
# that share the query's words. Chosen on the design halves (README, "Context budget").
SOURCE_SHARE = 1 / 3
# A condensed source below this is not worth its place (a title with no answer in it).
MIN_PASSAGE_TOKENS = 24
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def context_budget(profile: ModelProfile, question: str, max_new_tokens: int, count: Callable[[str], int]) -> int:
    """The context's share of the model's window, in its tokens: the window less the reply
    (when the reply shares it) and the rendered template with the question, less the
    profile's share kept for history (when it replays history), capped at the profile's
    `max_context_tokens`."""
    template = profile.render(question, " ", [], datetime.now(UTC)).describe()
    room = profile.context_window - count(template)
    if profile.reply_in_window:
        room -= max_new_tokens
    share = profile.history_share if profile.keeps_history else 0.0
    budget = int(room * (1 - share))
    if profile.max_context_tokens is not None:
        budget = min(budget, profile.max_context_tokens)
    return max(budget, MIN_CONTEXT_TOKENS)


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


def sentences(text: str) -> list[tuple[int, str]]:
    """The text's sentences with the number of the line each is on: the units a long
    source is condensed into (an FAQ row's first one is its question, a chunk's its
    heading)."""
    return [
        (number, piece)
        for number, line in enumerate(text.splitlines())
        for piece in (p.strip() for p in SENTENCE_END.split(line))
        if piece
    ]


def _joined(parts: Sequence[tuple[int, str]]) -> str:
    """Sentences put back together as they stood: a space within a line, a newline between."""
    out = ""
    for i, (line, piece) in enumerate(parts):
        out += piece if i == 0 else ("\n" if line != parts[i - 1][0] else " ") + piece
    return out


def condense(text: str, query: str, limit: int, count: Callable[[str], int]) -> str:
    """`text` cut to `limit`: its first sentence, then the sentences that share the most words
    with `query` (ties: the earlier), in their original order; "" when not even the first
    sentence and part of another fit. A text without sentences is trimmed."""
    parts = sentences(text)
    if limit < MIN_PASSAGE_TOKENS:
        return ""
    if len(parts) < 2:
        return trim_to_count(text, limit, count)
    head, rest = parts[0], parts[1:]
    wanted = set(terms(query))
    order = sorted(range(len(rest)), key=lambda i: (-len(wanted & set(terms(rest[i][1]))), i))
    used = count(head[1])
    chosen: list[int] = []
    for i in order:
        cost = count(rest[i][1]) + 1
        if used + cost <= limit:
            chosen.append(i)
            used += cost
    if not chosen:
        room = limit - used - 1
        if room < MIN_PASSAGE_TOKENS // 2:
            return trim_to_count(text, limit, count)
        best = rest[order[0]]
        return _joined([head, (best[0], trim_to_count(best[1], room, count))])
    return _joined([head, *(rest[i] for i in sorted(chosen))])


def select_context(
    matches: Sequence[Match],
    budget: int = 1000,
    count: Callable[[str], int] = len,
    separator_cost: int = SEPARATOR_COST,
    query: str = "",
    source_share: float = SOURCE_SHARE,
) -> list[Match]:
    """The matches to place in the prompt, in rank order, texts stripped. Each text costs
    `count(text) + separator_cost`; together they fit in `budget`. A text longer than
    `source_share` of the budget (or than what is left) is condensed to the sentences that
    matter for `query` (`condense`), so a tight budget holds several sources rather than
    one or two whole ones; the top hit always goes in, condensed or trimmed."""
    selected: list[Match] = []
    used = 0
    cap = max(int(budget * source_share), MIN_CONTEXT_TOKENS)
    for match in matches:
        text = match.text.strip()
        if not text:
            continue
        room = min(cap, budget - used) - separator_cost
        if room <= 0:
            break
        if count(text) <= room:
            short = text
        else:
            short = condense(text, query, room, count) or ("" if selected else trim_to_count(text, room, count))
            if short and count(short) > room:  # a tokenizer may count the joined sentences higher than their sum
                short = trim_to_count(short, room, count)
        if short:
            selected.append(replace(match, text=short))
            used += count(short) + separator_cost
    return selected


def join_context(matches: Sequence[Match]) -> str:
    return "\n".join(m.text for m in matches)
