"""Scores of a generated answer against a reference answer and the sources it was given
(bench/answer_quality.py prints them per local model).

`grounded` asks whether the answer invented a fact a reader could check: a number or a
product name that is neither in its sources nor in the question. It compares like with
like, so that a faithful answer is not counted as invented for its formatting: list markers
("1.") are not numbers, "1,000" is 1000, digits inside a name ("EC2", "ml.p3.2xlarge") are
part of that name, names match whatever their case or plural ("GPUs", "SAGEMAKER"),
and a number matches a whole number of the sources, not any digits in them ("1" is not in "10")."""

from __future__ import annotations

import re
from collections import Counter

WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
# a number standing alone: not part of a name (EC2, p3.2xlarge) nor of a longer number
NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?:%|(?![\w]))")
# product-like names: CamelCase, acronyms, letters with digits (SageMaker, JumpStart, AWS, EC2, PyTorch),
# lower-case instance types included (ml.p3.2xlarge)
NAME = re.compile(r"\b(?:[A-Z][A-Za-z0-9]*[A-Z0-9][A-Za-z0-9]*|[a-z]+(?:\.[a-z0-9]+)+\.\d*x?large)\b")
LIST_MARKER = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
PLURAL = re.compile(r"(?<=[A-Z0-9])s$")  # GPUs, EC2s


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def token_f1(answer: str, reference: str) -> float:
    a, r = words(answer), words(reference)
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or not common:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased words (longest common subsequence)."""
    a, r = words(answer), words(reference)
    if not a or not r:
        return 0.0
    previous = [0] * (len(r) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(r, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip("%") for n in NUMBER.findall(text)}  # 90% and 90 percent alike


def _name(name: str) -> str:
    return PLURAL.sub("", name).lower()


def ungrounded_claims(answer: str, sources: str, question: str = "") -> set[str]:
    """The numbers and product names of the answer found neither in the sources nor in the question."""
    allowed = f"{sources}\n{question}"
    answer = LIST_MARKER.sub(" ", answer)
    missing = _numbers(answer) - _numbers(allowed)
    known_names = {_name(n) for n in NAME.findall(allowed)} | set(words(allowed))
    missing |= {n for n in NAME.findall(answer) if _name(n) not in known_names}
    return missing


def grounded(answer: str, sources: str, question: str = "") -> bool:
    """Every number and product name of the answer appears in its sources (or the question)."""
    return not ungrounded_claims(answer, sources, question)


def loops(answer: str, tokens: int, limit: int) -> bool:
    """Ran to the token limit with a 4-word phrase repeated at least three times."""
    w = words(answer)
    grams = Counter(tuple(w[i : i + 4]) for i in range(len(w) - 3))
    return tokens >= limit - 1 and bool(grams) and grams.most_common(1)[0][1] >= 3
