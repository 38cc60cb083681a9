"""`ragchat eval QUESTIONS.jsonl`: measure retrieval on your own knowledge base, against the
local index, the deployed Pinecone index, or a running service."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from ..cli_args import service_url
from ..interfaces import GenerationParams, Match
from ..terminal import shown
from .questions import EvalQuestion, QuestionFileError, load_questions
from .report import Outcome, format_report, report

Lookup = Callable[[EvalQuestion], tuple[list[Match], list[Match]]]


def add_parser(commands: argparse._SubParsersAction) -> None:
    from ..engine import EngineSettings
    from ..ingest.command import DEFAULT_INDEX

    p = commands.add_parser(
        "eval",
        help="measure retrieval on a question file (rank-1, top-5, MRR, in prompt, no-answer)",
        description="Ask every question of a JSONL file (see the README for the format) and score what retrieval "
        "returns: rank-1, top-5, MRR, relevant among the prompt's sources, the no-answer shares, and each miss "
        "with what was retrieved instead. Exit code 0 whatever the scores; --json for CI.",
    )
    p.add_argument("questions", type=Path, help="the question file (JSON Lines)")
    p.add_argument("--target", choices=("local", "pinecone"), default="local",
                   help="the local index (default) or the deployed Pinecone index")  # fmt: skip
    p.add_argument(
        "--url", type=service_url, help="a running chat service (local or the stack's ChatUrl): asks its POST /retrieve"
    )
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="the reply length the context budget leaves room for (default: the model profile's, as a chat turn)",
    )
    p.add_argument("--top-k", type=int, default=EngineSettings.retrieval_top_k, help="candidates retrieved")
    p.add_argument("--lexical-weight", type=float, default=EngineSettings.lexical_weight,
                   help="pinecone: weight of BM25 in the hybrid score (0: dense only, for a cosine index)")  # fmt: skip
    p.add_argument("--min-score", type=float, default=EngineSettings.min_score, help="pinecone: no-answer threshold")
    p.add_argument("--model-profile", default="gpt-neoxt-chat",
                   help="pinecone: the chat model whose window sets the context budget")  # fmt: skip
    p.add_argument("--index", default=DEFAULT_INDEX, help="pinecone: the index name")
    p.add_argument("--namespace", default="")
    p.add_argument("--secret-arn", help="pinecone: read the key from this secret (default: $PINECONE_API_KEY)")
    p.add_argument("--sign", action=argparse.BooleanOptionalAction, default=None,
                   help="SigV4-sign requests to --url (default: on for Function URLs)")  # fmt: skip
    p.add_argument("--region", help="region for signing (default: read from the Function URL)")
    p.add_argument("--profile", help="AWS profile for signing (default: the standard credential chain)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(run=run)


def local_lookup(args: argparse.Namespace) -> Lookup:
    from ..local.factory import LocalSettings, build_local_engine, knowledge_base_path

    overrides: dict = {"retrieval_top_k": args.top_k}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.knowledge_base:
        overrides["knowledge_base"] = knowledge_base_path(args.knowledge_base)
    engine = build_local_engine(LocalSettings(**overrides), progress=False)
    params = GenerationParams(max_new_tokens=args.max_new_tokens or engine.profile.default_max_new_tokens)
    return lambda q: engine.lookup(q.question, q.prior_turns, params)


def pinecone_lookup(args: argparse.Namespace) -> Lookup:
    """The deployed index, queried as the Lambda queries it (embedding locally with the same
    model); the prompt's budget uses the Lambda's characters-per-token estimate."""
    from ..aws.generators import CHARS_PER_TOKEN
    from ..aws.pinecone_index import PineconeVectorIndex
    from ..catalog import get_profile
    from ..context import context_budget, select_context
    from ..ingest.targets import pinecone_api_key
    from ..local.embedder import OnnxMiniLMEmbedder
    from ..retrieval import FOLLOWUP_TURNS, HybridRetriever, above_threshold, retrieval_query

    key = pinecone_api_key(args.secret_arn)
    index = PineconeVectorIndex(args.index, lambda refresh=False: key)
    retriever = HybridRetriever(OnnxMiniLMEmbedder(), index, args.lexical_weight, args.namespace)
    profile = get_profile(args.model_profile)
    max_new_tokens = args.max_new_tokens or profile.default_max_new_tokens

    def count(text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def lookup(q: EvalQuestion) -> tuple[list[Match], list[Match]]:
        query = retrieval_query(q.question, q.prior_turns, FOLLOWUP_TURNS)
        ranked = retriever.search(query, args.top_k)
        passed = above_threshold(ranked, args.min_score)
        budget = context_budget(profile, q.question, max_new_tokens, count)
        return ranked, select_context(passed, budget, count, separator_cost=1, query=query)

    return lookup


def url_lookup(args: argparse.Namespace) -> Lookup:
    from ..cli import _client

    client = _client(args)

    def lookup(q: EvalQuestion) -> tuple[list[Match], list[Match]]:
        history = [{"role": t.role, "content": t.content} for t in q.prior_turns]
        body = client.retrieve(q.question, history, args.top_k, args.max_new_tokens)
        as_match = lambda s: Match(s["id"], float(s["score"]), s.get("text", ""), s.get("metadata") or {})  # noqa: E731
        return [as_match(s) for s in body.get("matches", [])], [as_match(s) for s in body.get("sources", [])]

    return lookup


def evaluate(questions: list[EvalQuestion], lookup: Lookup) -> list[Outcome]:
    return [Outcome(q, *lookup(q)) for q in questions]


def run(args: argparse.Namespace) -> int:
    from ..errors import ChatServiceError
    from ..ingest.targets import TargetError

    try:
        questions = load_questions(args.questions)
    except QuestionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.url:
            lookup, target = url_lookup(args), args.url
        elif args.target == "pinecone":
            lookup, target = pinecone_lookup(args), f"pinecone index {args.index}"
        else:
            lookup, target = local_lookup(args), "the local index"
        outcomes = evaluate(questions, lookup)
    except (TargetError, ChatServiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = report(outcomes, target)
    print(json.dumps(data, indent=2) if args.json else shown(format_report(data)))
    return 0
