"""A local STAND-IN for the moderation model, not a classifier.

No offline unsafe-content classifier of real quality exists on PyPI, so the local mode
uses a short keyword policy that blocks a few unmistakable requests for serious harm.
It exists so the moderation step of the flow runs and can be tested locally; it will
miss most harmful text. The deployed stack uses GPT-JT-Moderation-6B or Amazon
Comprehend instead. Its verdicts say so in their `provider` field."""

from __future__ import annotations

import re

from ..interfaces import ModerationResult

PROVIDER = "local-stand-in (keyword policy, not a real classifier)"

_PATTERNS = [
    r"\b(build|make|assemble|construct)\b.{0,40}\b(bomb|explosive|nerve agent|bioweapon|chemical weapon)s?\b",
    r"\b(kill|murder|poison|shoot|stab)\b.{0,20}\b(him|her|them|my|someone|somebody|people|a person|you)\b",
    r"\bhow (do|can|to) i\b.{0,30}\b(hurt|kill|harm)\b.{0,20}\b(someone|somebody|people|a person|him|her|them|my)\b",
    r"\b(child|minor)s?\b.{0,30}\b(sexual|nude|porn)",
    r"\b(i want to|i'm going to|i will|going to)\b.{0,20}\b(kill|end) myself\b",
]
_BLOCK = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE | re.DOTALL)


class KeywordStandInModerator:
    """Labels follow GPT-JT-Moderation's: only "needs intervention" blocks."""

    def check(self, text: str) -> ModerationResult:
        if _BLOCK.search(text):
            return ModerationResult(True, "needs intervention", PROVIDER)
        return ModerationResult(False, "casual", PROVIDER)
