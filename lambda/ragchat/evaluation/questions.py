"""The question file of `ragchat eval`: JSON Lines, one question per line.

    {"id": "spot-1", "question": "Can I train on spare capacity?", "relevant_rows": [90]}
    {"id": "none-1", "question": "Does it run on Trainium?", "kind": "no_answer"}
    {"id": "fu-1", "question": "does it save money?", "relevant_rows": [91],
     "prior_turns": [{"role": "user", "content": "How does Spot training work?"},
                     {"role": "assistant", "content": "..."}]}

A retrieved source is relevant when its metadata `row` is in `relevant_rows` (CSV rows,
0-based, as the loader numbers them), or when `relevant_ids` names it: its chunk id, the
file it came from as its id starts ("docs/security.md" for a folder `docs` given to
`ragchat ingest`, or "manual.pdf" for a file given alone), or its `source` or `file`.
`kind` is `answerable`, `no_answer` or `followup`; left out, it follows from the rest (prior
turns: followup; nothing relevant: no_answer). The bench's older `{"q", "rows"}` lines are
read too. Any other key is refused (a misspelt `relevant_row` would have made the question
a no-answer one); keys starting with `_` are notes and are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..ingest.chunking import id_source
from ..interfaces import Match, Turn

KINDS = ("answerable", "followup", "no_answer")
KEYS = ("id", "question", "kind", "relevant_rows", "relevant_ids", "prior_turns")


class QuestionFileError(ValueError):
    """A line of the question file that cannot be used; the message names line and field."""


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    kind: str
    relevant_rows: tuple[int, ...] = ()
    relevant_ids: tuple[str, ...] = ()
    prior_turns: tuple[Turn, ...] = ()

    def is_relevant(self, match: Match) -> bool:
        row = match.metadata.get("row")
        if isinstance(row, int) and row in self.relevant_rows:
            return True
        source = id_source(match.id)  # "docs/security.md", as `ragchat ingest` wrote it (names %-escaped)
        names = {match.id, source, unquote(source), match.metadata.get("source"), match.metadata.get("file")}
        return bool(names & set(self.relevant_ids))


def _field(record: dict[str, Any], where: str, name: str, kind: type, default: Any) -> Any:
    value = record.get(name, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise QuestionFileError(f"{where}: field {name!r} must be a {kind.__name__}")
    return value


def parse_question(record: Any, where: str, number: int) -> EvalQuestion:
    if not isinstance(record, dict):
        raise QuestionFileError(f"{where}: expected a JSON object")
    record = dict(record)
    if "q" in record and "question" not in record:  # the bench's older format
        record["question"] = record.pop("q")
        record.setdefault("relevant_rows", record.pop("rows", []))
    unknown = [k for k in record if k not in KEYS and not k.startswith("_")]
    if unknown:
        raise QuestionFileError(
            f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(KEYS)} (notes: a key starting with _)"
        )
    question = _field(record, where, "question", str, None).strip()
    if not question:
        raise QuestionFileError(f"{where}: field 'question' is empty")
    rows = _field(record, where, "relevant_rows", list, [])
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rows):
        raise QuestionFileError(f"{where}: field 'relevant_rows' must list row numbers (0-based integers)")
    ids = _field(record, where, "relevant_ids", list, [])
    if not all(isinstance(i, str) and i for i in ids):
        raise QuestionFileError(f"{where}: field 'relevant_ids' must list non-empty strings")
    turns = []
    for turn in _field(record, where, "prior_turns", list, []):
        if not (
            isinstance(turn, dict)
            and turn.get("role") in ("user", "assistant")
            and isinstance(turn.get("content"), str)
        ):
            raise QuestionFileError(f'{where}: field \'prior_turns\' must list {{"role": user|assistant, "content"}}')
        turns.append(Turn(turn["role"], turn["content"]))
    relevant = bool(rows or ids)
    inferred = "followup" if turns else ("answerable" if relevant else "no_answer")
    kind = _field(record, where, "kind", str, inferred)
    if kind not in KINDS:
        raise QuestionFileError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}")
    if kind == "no_answer" and relevant:
        raise QuestionFileError(f"{where}: a no_answer question lists no relevant rows or ids")
    if kind != "no_answer" and not relevant:
        raise QuestionFileError(f"{where}: field 'relevant_rows' or 'relevant_ids' is needed for a {kind} question")
    if kind == "followup" and not turns:
        raise QuestionFileError(f"{where}: field 'prior_turns' is needed for a followup question")
    identifier = record.get("id", f"line-{number}")
    return EvalQuestion(str(identifier), question, kind, tuple(rows), tuple(ids), tuple(turns))


def load_questions(path: Path) -> list[EvalQuestion]:
    """Every question of the file; the first unusable line stops with its line and field."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionFileError(f"{path}: cannot read: {exc}") from None
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{where}: not valid JSON: {exc.msg}") from None
        questions.append(parse_question(record, where, number))
    if not questions:
        raise QuestionFileError(f"{path}: no questions")
    return questions
