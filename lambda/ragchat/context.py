"""The context rule: which retrieved texts go into the prompt.

The original joined texts until the first one that did not fit in a 1000-character
budget and then stopped, so one long top hit left the context empty. Here no source takes
more than a third of the budget: a longer one is condensed to the sentences that matter for
the question (`passages.py`), a later one with too little room left is skipped (a shorter
one may still fit), and the top hit is condensed or trimmed rather than dropped, so
retrieval that found something never yields an empty context.

The budget is counted in the chat model's tokens (`count` is its tokenizer, or the
characters-per-token estimate where none can run); with `count=len` and a separator of
two it is the original rule in characters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from .interfaces import Match
from .passages import condense, trim_to_count
from .prompts import ModelProfile

SEPARATOR_COST = 2  # each text counts its length + 2, as in the original rule
# The context never gets less than this, however long a reply was asked for: the top hit,
# trimmed, still goes in (the model server refuses or truncates a prompt past its window).
MIN_CONTEXT_TOKENS = 64
# One source takes at most this share of the budget (but at least MIN_CONTEXT_TOKENS): past it,
# it is condensed (`passages.condense`). Chosen on the design halves (README, "Context budget").
SOURCE_SHARE = 1 / 3


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
    `source_share` of the budget (or than what is left) is condensed to what matters for
    `query` (`passages.condense`), so a tight budget holds several sources rather than one
    or two whole ones; budget left over at the end goes back to the condensed ones, best
    first. The top hit always goes in, condensed or trimmed."""
    cap = max(int(budget * source_share), MIN_CONTEXT_TOKENS)
    chosen: list[tuple[Match, str, int]] = []  # (match with its whole text, the text placed, its tokens)
    used = 0
    for match in matches:
        text = match.text.strip()
        if not text:
            continue
        room = min(cap, budget - used) - separator_cost
        if room <= 0:
            break
        short = _fit(text, query, room, count, top=not chosen)
        if short:
            tokens = count(short)
            chosen.append((replace(match, text=text), short, tokens))
            used += tokens + separator_cost
    for i, (match, short, tokens) in enumerate(chosen):  # the budget left over, to the condensed ones
        left = budget - used
        if left <= 0:
            break
        if short != match.text:
            longer = _fit(match.text, query, tokens + left, count, top=True)
            grown = count(longer)
            if grown > tokens:
                used += grown - tokens
                chosen[i] = (match, longer, grown)
    return [replace(match, text=short) for match, short, _ in chosen]


def _fit(text: str, query: str, room: int, count: Callable[[str], int], top: bool) -> str:
    """`text` whole when it fits in `room`, else condensed; the top hit at least trimmed."""
    if count(text) <= room:
        return text
    short = condense(text, query, room, count) or (trim_to_count(text, room, count) if top else "")
    if short and count(short) > room:  # a tokenizer may count the joined sentences higher than their sum
        short = trim_to_count(short, room, count)
    return short


def join_context(matches: Sequence[Match]) -> str:
    return "\n".join(m.text for m in matches)
