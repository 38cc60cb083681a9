"""The context rule: which retrieved texts go into the prompt.

The original joined texts until the first one that did not fit in a 1000-character
budget and then stopped, so one long top hit left the context empty. Here a text that
does not fit is skipped (a later, shorter one may still fit), and the top hit is trimmed
rather than dropped, so retrieval that found something never yields an empty context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .interfaces import Match

SEPARATOR_COST = 2  # each text counts its length + 2, as in the original rule
ELLIPSIS = "…"


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


def select_context(matches: Sequence[Match], budget_chars: int = 1000) -> list[Match]:
    """The matches to place in the prompt, in rank order, texts stripped (the first one
    possibly trimmed). Their texts joined with newlines fit in `budget_chars`."""
    selected: list[Match] = []
    used = 0
    for match in matches:
        text = match.text.strip()
        if not text:
            continue
        cost = len(text) + SEPARATOR_COST
        if used + cost <= budget_chars:
            selected.append(replace(match, text=text))
            used += cost
        elif not selected and budget_chars > SEPARATOR_COST:
            selected.append(replace(match, text=trim_to(text, budget_chars - SEPARATOR_COST)))
            used = budget_chars
    return selected


def join_context(matches: Sequence[Match]) -> str:
    return "\n".join(m.text for m in matches)
