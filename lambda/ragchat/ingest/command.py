"""`ragchat ingest`: load documents into the local index or into Pinecone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..aws.settings import DEFAULT_PINECONE_INDEX
from ..interfaces import Embedder
from ..terminal import shown
from .chunking import ChunkSettings, chunk_documents
from .pipeline import IngestSummary, ingest
from .sources import CsvOptions, JsonlOptions, id_scope, read_sources
from .targets import TargetError, local_target, pinecone_api_key, pinecone_target

DEFAULT_INDEX = DEFAULT_PINECONE_INDEX


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "ingest",
        help="load documents into the local index or Pinecone",
        description="Chunk, embed and upsert CSV, JSONL, PDF, Markdown, text and HTML files, and folders of them. "
        "Re-runs upsert only what is new; an interrupted run resumes where it stopped.",
    )
    p.add_argument("sources", nargs="*", type=Path, help="files or folders")
    p.add_argument("--target", choices=("local", "pinecone"), default="local")
    p.add_argument("--index", default=DEFAULT_INDEX, help=f"Pinecone index name (default {DEFAULT_INDEX})")
    p.add_argument("--namespace", default="")
    p.add_argument("--embedder", choices=("local", "sagemaker"), default="local")
    p.add_argument("--endpoint", help="the embedding endpoint (stack output EmbeddingEndpointName)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-tokens", type=int, default=200, help="target chunk size in word pieces (max 254)")
    p.add_argument("--overlap-tokens", type=int, default=32)
    p.add_argument(
        "--sync",
        action="store_true",
        help="also delete the vectors that came from these files or folders (ids under their name) and that "
        "they no longer produce; nothing else in the index is touched",
    )
    p.add_argument(
        "--forget",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="delete every chunk stored from a file or folder that no longer exists (given as it was ingested: "
        "docs, or docs/manual.pdf when the file was given alone; ids hold names, not paths, so another "
        "folder of the same name shares them: check with --dry-run); repeatable",
    )
    p.add_argument("--dry-run", action="store_true", help="read, chunk and compare, write nothing")
    p.add_argument("--csv-columns", default="0,1", help="text columns, by 0-based index or by name with a header")
    p.add_argument("--csv-title-column", default="0", help="column used as title, or 'none'")
    p.add_argument("--csv-header", action="store_true", help="the CSV's first row names the columns")
    p.add_argument("--text-field", default="text", help="JSONL: the field holding the text")
    p.add_argument("--metadata-fields", help="JSONL: comma-separated fields to keep (default: all scalar fields)")
    p.add_argument("--cloud", default="aws", help="Pinecone serverless cloud for a new index")
    p.add_argument("--region", default="us-east-1", help="Pinecone serverless region for a new index")
    p.add_argument("--secret-arn", help="read the Pinecone key from this secret (default: $PINECONE_API_KEY)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def _embedder(args: argparse.Namespace) -> Embedder:
    if args.embedder == "sagemaker":
        if not args.endpoint:
            raise TargetError("--embedder sagemaker needs --endpoint (the stack output EmbeddingEndpointName)")
        from ..aws.factory import sagemaker_embedder

        return sagemaker_embedder(args.endpoint)
    from ..local.factory import local_embedder

    return local_embedder()


def _scopes(paths: list[Path]) -> list[str]:
    """The id scopes of the given paths that exist and have a UTF-8 name (the others are problems)."""
    scopes = []
    for path in filter(Path.exists, paths):
        try:
            scopes.append(id_scope(path))
        except UnicodeEncodeError:
            continue
    return scopes


# A path removed from inside an ingested folder was stored under that folder's name; `--sync` of the
# folder deletes exactly its chunks (scopes guessed from the path's parents could claim another
# folder's: `archive/docs/sub`, ingested as `docs`, has the ids of a removed `site/docs/sub`).
FORGET_INSIDE_HINT = (
    "note: nothing was stored under {paths} as a file or folder given to ingest; if it was inside a folder "
    "you ingested, run `ragchat ingest FOLDER --sync` with that folder as you gave it then"
)


def _forgotten(paths: list[Path]) -> list[str]:
    """The id scopes a removed path's chunks were stored under, as `id_scope` made them: as a
    file given alone ("manual.pdf#", its own name) or as a folder ("docs/", the name it
    resolved to); which one it was cannot be told any more. Ids hold names, not paths: a
    folder of the same name elsewhere shares them (the README says to name folders apart)."""
    from .chunking import escape_id_part

    return [
        scope
        for path in paths
        for scope in (f"{escape_id_part(path.name)}#", f"{escape_id_part(path.resolve().name)}/")
    ]


def run(args: argparse.Namespace) -> int:
    from ..errors import ChatServiceError
    from .tokens import MiniLMTokens

    try:
        settings = ChunkSettings(args.chunk_tokens, args.overlap_tokens)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.sources and not args.forget:
        print("error: give files or folders to ingest, or --forget PATH", file=sys.stderr)
        return 2
    if existing := [str(path) for path in args.forget if path.exists()]:
        print(f"error: --forget is for removed files: {', '.join(existing)} exists (re-read it with --sync)",
              file=sys.stderr)  # fmt: skip
        return 2
    title = None if args.csv_title_column.lower() == "none" else args.csv_title_column
    csv_options = CsvOptions(tuple(c.strip() for c in args.csv_columns.split(",")), title, args.csv_header)
    fields = tuple(f.strip() for f in args.metadata_fields.split(",")) if args.metadata_fields else None
    texts, problems = read_sources(args.sources, csv_options, JsonlOptions(args.text_field, fields))
    for problem in problems:
        print(f"skipped {shown(problem)}", file=sys.stderr)
    if args.sync and (missing := [str(path) for path in args.sources if not path.exists()]):
        print(f"note: to delete what {', '.join(missing)} stored, run with --forget {missing[0]}", file=sys.stderr)
    # a folder whose files were all removed: --sync deletes its chunks; files that failed are no such case
    emptied = args.sync and not problems and any(path.is_dir() for path in args.sources)
    if not texts and not emptied and not args.forget:
        print("error: nothing valid to ingest in the given sources", file=sys.stderr)
        return 1
    chunks = chunk_documents(texts, MiniLMTokens(), settings)
    summary = IngestSummary(documents=len(texts), problems=[str(p) for p in problems])
    try:
        embedder = _embedder(args)
        if args.target == "local":
            from ..local.factory import LocalSettings

            data_dir = Path(args.data_dir) if args.data_dir else LocalSettings().data_dir
            index = local_target(data_dir, embedder.dimension)
        else:
            index = pinecone_target(
                args.index, embedder.dimension, pinecone_api_key(args.secret_arn), cloud=args.cloud, region=args.region
            )
        if args.forget:  # nothing to read: every id stored under their names is stale
            forgotten = ingest([], embedder, index, namespace=args.namespace, scopes=_forgotten(args.forget),
                               sync=True, dry_run=args.dry_run, progress=False)  # fmt: skip
        if args.sources:
            ingest(
                chunks,
                embedder,
                index,
                namespace=args.namespace,
                scopes=_scopes(args.sources),
                keep=[problem.id_prefix for problem in problems if problem.id_prefix],
                batch_size=args.batch_size,
                sync=args.sync,
                dry_run=args.dry_run,
                progress=not args.no_progress,
                summary=summary,
                stored=index.stored_texts(args.namespace) if args.target == "local" else (),
            )
        if args.forget:
            summary.deleted += forgotten.deleted
            if not forgotten.deleted and not args.dry_run:  # removed from inside an ingested folder, probably
                print(FORGET_INSIDE_HINT.format(paths=", ".join(map(str, args.forget))), file=sys.stderr)
    except (TargetError, ChatServiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"partial: {summary.line()}", file=sys.stderr)
        return 2
    if args.target == "local" and not args.dry_run:
        held = f"the local index in {data_dir} now holds {index.count(args.namespace)} entries (chunks and FAQ rows)"
        if args.namespace:
            print(f"{held} in namespace {args.namespace!r} (`ragchat serve` searches the default namespace)")
        else:
            print(f"{held}; a running `ragchat serve` on this data folder answers from them from its next question")
    print(summary.line())  # last: scripts read the summary from the last line
    return 0
