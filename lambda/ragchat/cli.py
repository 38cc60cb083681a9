"""`ragchat`: serve the local chat service, ask one question, chat in a REPL, or ingest documents."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .engine import ChatEngine, ChatRequest, ChatResult, Token
from .interfaces import GenerationParams

CURL_EXAMPLE = (
    "curl -s {url}/chat -H 'Content-Type: application/json' "
    '-d \'{{"inputs": "Which instances can I use with Managed Spot Training in SageMaker?"}}\''
)


def _engine(args: argparse.Namespace) -> ChatEngine:
    from .local.factory import LocalSettings, build_local_engine

    overrides = {"data_dir": Path(args.data_dir)} if args.data_dir else {}
    if args.knowledge_base:
        overrides["knowledge_base"] = Path(args.knowledge_base)
    return build_local_engine(LocalSettings(**overrides))


def _params(args: argparse.Namespace) -> GenerationParams:
    return GenerationParams(temperature=args.temperature, top_k=args.top_k, max_new_tokens=args.max_new_tokens)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    engine = _engine(args)
    url = f"http://{args.host}:{args.port}"
    print(f"\nRAG chat service (local mode) on {url}\nTry:\n  {CURL_EXAMPLE.format(url=url)}\n", flush=True)
    uvicorn.run(create_app(lambda: engine), host=args.host, port=args.port, log_level="info")
    return 0


def print_sources(result: ChatResult) -> None:
    for n, source in enumerate(result.sources, 1):
        meta = source.metadata
        where = f"{meta.get('source', '?')} row {meta['row']}" if "row" in meta else meta.get("source", source.id)
        print(f"  [{n}] {where} (score {source.score:.3f}): {source.text[:100].replace(chr(10), ' ')}…")


def ask(args: argparse.Namespace) -> int:
    engine = _engine(args)
    result = engine.chat(ChatRequest(args.question, _params(args), args.session_id, args.no_retrieval))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.outputs)
        print(f"\nsession: {result.session_id}\nsources:")
        print_sources(result)
    return 0


def chat(args: argparse.Namespace) -> int:
    engine = _engine(args)
    session_id = args.session_id
    print("Local RAG chat. Empty line or Ctrl-D to quit.")
    while True:
        try:
            question = input("\nyou> ").strip()
        except EOFError:
            break
        if not question:
            break
        print("bot> ", end="", flush=True)
        for event in engine.stream(ChatRequest(question, _params(args), session_id, args.no_retrieval)):
            if isinstance(event, Token):
                print(event.text, end="", flush=True)
            else:
                session_id = event.session_id
                if event.blocked:
                    print(f"\n[blocked by moderation] {event.outputs}", end="")
                print(f"\n(session {session_id})")
                print_sources(event)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ragchat", description=__doc__)
    parser.add_argument("--data-dir", help="local data folder (default: .data in the project, or $RAGCHAT_DATA_DIR)")
    parser.add_argument("--knowledge-base", help="the FAQ CSV to index (default: data/Amazon_SageMaker_FAQs.csv)")
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser("serve", help="serve the HTTP API")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8080)
    p_serve.set_defaults(run=serve)

    for name, fn, helptext in (("ask", ask, "answer one question"), ("chat", chat, "interactive chat")):
        p = commands.add_parser(name, help=helptext)
        if name == "ask":
            p.add_argument("question")
            p.add_argument("--json", action="store_true", help="print the full JSON response")
        p.add_argument("--session-id")
        p.add_argument("--temperature", type=float, default=0.6)
        p.add_argument("--top-k", type=int, default=40)
        p.add_argument("--max-new-tokens", type=int, default=256)
        p.add_argument("--no-retrieval", action="store_true")
        p.set_defaults(run=fn)

    from .ingest.command import add_parser as add_ingest_parser

    add_ingest_parser(commands)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
