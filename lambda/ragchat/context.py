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

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from .interfaces import Match
from .prompts import ModelProfile

SEPARATOR_COST = 2  # each text counts its length + 2, as in the original rule
ELLIPSIS = "…"
# The context never gets less than this, however long a reply was asked for: the top hit,
# trimmed, still goes in (the model server refuses or truncates a prompt past its window).
MIN_CONTEXT_TOKENS = 64


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


def select_context(
    matches: Sequence[Match],
    budget: int = 1000,
    count: Callable[[str], int] = len,
    separator_cost: int = SEPARATOR_COST,
) -> list[Match]:
    """The matches to place in the prompt, in rank order, texts stripped (the first one
    possibly trimmed). Each text costs `count(text) + separator_cost`; together they fit
    in `budget`."""
    selected: list[Match] = []
    used = 0
    for match in matches:
        text = match.text.strip()
        if not text:
            continue
        cost = count(text) + separator_cost
        if used + cost <= budget:
            selected.append(replace(match, text=text))
            used += cost
        elif not selected and budget > separator_cost:
            selected.append(replace(match, text=trim_to_count(text, budget - separator_cost, count)))
            used = budget
    return selected


def join_context(matches: Sequence[Match]) -> str:
    return "\n".join(m.text for m in matches)
