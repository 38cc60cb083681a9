"""Scores of one `ragchat eval` run: per kind of question, the rank of the first relevant
source, whether one reached the prompt, and whether the no-answer threshold cut it all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..interfaces import Match
from .questions import KINDS, EvalQuestion

MAX_ANSWERABLE_CUT = 0.03  # the calibration's bound on answerable questions wrongly given no sources


@dataclass(frozen=True)
class Outcome:
    """What retrieval made of one question: the ranked matches (before the no-answer
    threshold) and the sources placed in the prompt."""

    question: EvalQuestion
    ranked: Sequence[Match]
    sources: Sequence[Match]

    @property
    def rank(self) -> int | None:
        """1-based rank of the first relevant match, None when none was retrieved."""
        return next((i for i, m in enumerate(self.ranked, 1) if self.question.is_relevant(m)), None)

    @property
    def in_prompt(self) -> bool:
        return any(self.question.is_relevant(m) for m in self.sources)

    @property
    def top_score(self) -> float | None:
        return self.ranked[0].score if self.ranked else None

    @property
    def missed(self) -> bool:
        if self.question.kind == "no_answer":
            return bool(self.sources)
        return self.rank != 1 or not self.in_prompt


def _share(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def scores(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Per kind: rank-1, top-5, MRR, relevant among the prompt's sources, and the share
    given no sources (wrongly for answerable questions, rightly for no-answer ones)."""
    result: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        group = [o for o in outcomes if o.question.kind == kind]
        if not group:
            continue
        no_sources = _share([not o.sources for o in group])
        if kind == "no_answer":
            result[kind] = {"n": len(group), "no_sources": no_sources}
            continue
        ranks = [o.rank for o in group]
        result[kind] = {
            "n": len(group),
            "rank1": _share([r == 1 for r in ranks]),
            "top5": _share([r is not None and r <= 5 for r in ranks]),
            "mrr": round(sum(1 / r for r in ranks if r) / len(group), 4),
            "in_prompt": _share([o.in_prompt for o in group]),
            "no_sources": no_sources,
        }
    return result


def calibrate(outcomes: Sequence[Outcome], max_cut: float = MAX_ANSWERABLE_CUT) -> dict[str, float] | None:
    """The no-answer threshold these questions support: among thresholds that give no
    sources to at most `max_cut` of the questions that have an answer, the one that cuts
    the most no-answer questions, then the fewest answerable ones, then the highest. None
    without both kinds."""
    answerable = [o.top_score or 0.0 for o in outcomes if o.question.kind != "no_answer"]
    unanswerable = [o.top_score or 0.0 for o in outcomes if o.question.kind == "no_answer"]
    if not answerable or not unanswerable:
        return None

    def cut(scores: list[float], threshold: float) -> float:
        return _share([s < threshold for s in scores])

    allowed = [t for t in set(answerable + unanswerable) if cut(answerable, t) <= max_cut]
    best = max(allowed, key=lambda t: (cut(unanswerable, t), -cut(answerable, t), t))
    return {
        "min_score": round(best, 4),
        "answerable_cut": cut(answerable, best),
        "no_answer_cut": cut(unanswerable, best),
        "max_answerable_cut": max_cut,
    }


def _label(match: Match) -> str:
    meta = match.metadata
    place = next((f"{k} {meta[k]}" for k in ("row", "page", "line", "chunk") if k in meta), match.id[:12])
    where = f"{meta['source']} {place}" if meta.get("source") else place  # several files: which one
    title = str(meta.get("title") or meta.get("section") or match.text.split("\n", 1)[0])[:70]
    return f"{where} ({match.score:.3f}) {title}"


def misses(outcomes: Sequence[Outcome], shown: int = 3) -> list[dict[str, Any]]:
    out = []
    for o in outcomes:
        if not o.missed:
            continue
        q = o.question
        out.append({
            "id": q.id, "kind": q.kind, "question": q.question, "rank": o.rank, "in_prompt": o.in_prompt,
            "relevant": [f"row {r}" for r in q.relevant_rows] + list(q.relevant_ids),
            "retrieved": [_label(m) for m in o.ranked[:shown]],
            "sources": len(o.sources),
        })  # fmt: skip
    return out


def report(outcomes: Sequence[Outcome], target: str) -> dict[str, Any]:
    return {
        "target": target,
        "scores": scores(outcomes),
        "calibration": calibrate(outcomes),
        "misses": misses(outcomes),
    }


def format_report(data: dict[str, Any]) -> str:
    lines = [f"retrieval on {data['target']}"]
    for kind, s in data["scores"].items():
        if kind == "no_answer":
            lines.append(f"  {kind:<11} n={s['n']:<4} given no sources {s['no_sources']:.1%}")
        else:
            lines.append(
                f"  {kind:<11} n={s['n']:<4} rank-1 {s['rank1']:.1%}  top-5 {s['top5']:.1%}  MRR {s['mrr']:.3f}  "
                f"relevant in prompt {s['in_prompt']:.1%}  wrongly given no sources {s['no_sources']:.1%}"
            )
    calibration = data.get("calibration")
    if calibration:
        lines.append(
            f"  no-answer threshold these questions support: min_score {calibration['min_score']} "
            f"(cuts {calibration['answerable_cut']:.1%} of answerable, {calibration['no_answer_cut']:.1%} of no-answer)"
        )
    lines.append(f"misses ({len(data['misses'])}):")
    for miss in data["misses"]:
        state = "sources given" if miss["kind"] == "no_answer" else f"rank {miss['rank'] or '-'}"
        if miss["kind"] != "no_answer":
            state += ", in prompt" if miss["in_prompt"] else ", not in prompt"
        lines.append(f"  [{miss['id']}] {miss['question']}")
        lines.append(f"      relevant: {', '.join(miss['relevant']) or 'none'}; {state}")
        lines.extend(f"      got {label}" for label in miss["retrieved"])
    return "\n".join(lines)
