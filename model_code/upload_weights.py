"""Copy Hugging Face model weights into your own S3 prefix, so the endpoints start without
the hub (network isolation on) and always load the same revision.

One command stages every LLM a configuration deploys, each under <prefix>/<model>/<commit>/
(the commit the revision resolved to when staged), and prints the deploy flags:

    python model_code/upload_weights.py --for-config s3://my-bucket/ragchat-weights/
    python model_code/upload_weights.py --for-config s3://my-bucket/w/ --chat-model flan-t5 --moderation off

One model into a prefix of your choice:

    python model_code/upload_weights.py togethercomputer/GPT-NeoXT-Chat-Base-20B s3://my-bucket/gpt-neoxt/
    npx cdk deploy -c ragchat:chat_model_s3_uri=s3://my-bucket/gpt-neoxt/

Resumable: the download resumes partial files, and the upload skips objects that are already
in S3 at the same size, so after an interruption run the same command again."""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
# Configs and tokenizer files a serving container needs next to the weights.
SUPPORT_FILES = ("*.json", "*.txt", "*.model", "*.py", "tokenizer*")
MIB = 1024**2
MODEL_CODE = Path(__file__).resolve().parent


def _property(folder: str, key: str) -> str | None:
    """One `key=value` of a model_code folder's serving.properties (None: not set)."""
    for line in (MODEL_CODE / folder / "serving.properties").read_text().splitlines():
        name, _, value = line.strip().partition("=")
        if name.strip() == key:
            return value.strip()
    return None


def stageable_chat_models() -> dict[str, tuple[str, str | None]]:
    """Catalog name -> (hub model id, the revision its entry pins) of every chat model whose
    weights can be staged (a `weights_key` in its catalog entry); the catalog names them."""
    from ragchat.catalog import CHAT_MODELS as CATALOG

    models: dict[str, tuple[str, str | None]] = {}
    for name, model in CATALOG.items():
        serving = model.serving
        if getattr(serving, "weights_key", None) is None:  # a model package, or Bedrock
            continue
        setting = serving.environment if serving.weights_key in serving.environment else None
        if setting is not None:
            model_id, revision = setting[serving.weights_key], setting.get(serving.revision_key or "")
        else:
            model_id = _property(serving.model_archive or "", serving.weights_key)
            revision = _property(serving.model_archive or "", serving.revision_key or "")
        if model_id is None:
            raise KeyError(f"{serving.model_archive}/serving.properties has no {serving.weights_key}")
        models[name] = (model_id, revision)
    return models


# The hub models each configuration's endpoints serve, and the setting that points the
# stack at their staged copy.
CHAT_MODELS = {name: model_id for name, (model_id, _) in stageable_chat_models().items()}
MODERATION_MODEL = _property("moderation_llm", "option.model_id") or ""
# The commit each model's serving configuration pins: staged by default, so S3 and hub mode serve the same
PINNED_REVISIONS = {model_id: rev for model_id, rev in stageable_chat_models().values() if rev}
if _moderation_revision := _property("moderation_llm", "option.revision"):
    PINNED_REVISIONS[MODERATION_MODEL] = _moderation_revision


class UploadError(Exception):
    """A failure the user can act on; the message says what to do."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix ending in / or empty)."""
    match = S3_URI.match(uri)
    if not match:
        raise UploadError(f"{uri!r} is not an s3://bucket/prefix URI")
    prefix = (match["prefix"] or "").strip("/")
    return match["bucket"], f"{prefix}/" if prefix else ""


def weight_patterns(repo_files: Iterable[str]) -> list[str]:
    """safetensors when the repository has them (faster, safer to load), else the .bin
    shards, plus configs and tokenizer; never both copies of the weights."""
    has_safetensors = any(name.endswith(".safetensors") for name in repo_files)
    return ["*.safetensors" if has_safetensors else "*.bin", *SUPPORT_FILES]


def download(
    model_id: str, revision: str | None, include: Sequence[str] | None, local_dir: Path, endpoint: str | None = None
) -> Path:
    """The snapshot in `local_dir` (partial files resume)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        patterns = (
            list(include)
            if include
            else weight_patterns(HfApi(endpoint=endpoint).list_repo_files(model_id, revision=revision))
        )
        print(f"downloading {model_id}@{revision or 'main'} ({', '.join(patterns)}) to {local_dir}", file=sys.stderr)
        path = snapshot_download(
            model_id, revision=revision, allow_patterns=patterns, local_dir=local_dir, endpoint=endpoint
        )
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise UploadError(f"{model_id}@{revision or 'main'} not found on the hub: {exc}") from None
    except HfHubHTTPError as exc:
        raise UploadError(f"hub download failed ({exc}); run the same command again to resume") from None
    return Path(path)


def resolve_commit(model_id: str, revision: str | None, endpoint: str | None = None) -> str:
    """The commit a branch or tag points at now: what gets staged, and named in the prefix."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return HfApi(endpoint=endpoint).model_info(model_id, revision=revision or "main").sha
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise UploadError(f"{model_id}@{revision or 'main'} not found on the hub: {exc}") from None
    except HfHubHTTPError as exc:
        raise UploadError(f"cannot resolve {model_id}@{revision or 'main'} ({exc}); try again") from None


def configuration_models(chat_model: str, moderation: str) -> list[tuple[str, str]]:
    """(setting, hub model id) of every LLM the configuration serves from a container."""
    if chat_model not in CHAT_MODELS:
        raise UploadError(f"--chat-model {chat_model}: weights can be staged for {', '.join(CHAT_MODELS)}")
    models = [("chat_model_s3_uri", CHAT_MODELS[chat_model])]
    if moderation == "endpoint":
        models.append(("moderation_model_s3_uri", MODERATION_MODEL))
    return models


def files_to_upload(folder: Path) -> list[Path]:
    """Every file of the snapshot, without the hub client's own bookkeeping (.cache/)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts)


@dataclass
class UploadSummary:
    uploaded: int = 0
    skipped: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0


class Progress:
    """Per-file and total progress on one line, at most a few times a second."""

    def __init__(self, total_bytes: int, out: TextIO, interval: float = 0.5) -> None:
        self.total, self.done, self.out, self.interval = total_bytes, 0, out, interval
        self.lock = threading.Lock()
        self.last = 0.0
        self.name, self.file_done, self.file_size = "", 0, 0

    def start(self, name: str, size: int) -> None:
        self.name, self.file_done, self.file_size = name, 0, size

    def advance(self, sent: int) -> None:
        with self.lock:  # boto3 calls back from its transfer threads
            self.done += sent
            self.file_done += sent
            now = time.monotonic()
            finished = self.file_done >= self.file_size
            if now - self.last >= self.interval or finished:
                self.last = now
                self.out.write(
                    f"\r{self.name}: {_pct(self.file_done, self.file_size)}  "
                    f"total {_size(self.done)} of {_size(self.total)} ({_pct(self.done, self.total)})"
                    + ("\n" if finished else "")
                )
                self.out.flush()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:,.1f} GiB"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "100.0%"


def upload(
    folder: Path, bucket: str, prefix: str, s3: Any, out: TextIO | None = None, transfer_config: Any = None
) -> UploadSummary:
    """Upload the folder under s3://bucket/prefix; objects already there at the same size
    are skipped (that is what makes a second run resume)."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError, NoCredentialsError

    out = out or sys.stderr
    config = transfer_config or TransferConfig(multipart_threshold=64 * MIB, multipart_chunksize=64 * MIB)
    started = time.monotonic()
    summary = UploadSummary()
    try:
        existing = _existing_sizes(s3, bucket, prefix)
        pending = []
        for path in files_to_upload(folder):
            key = prefix + path.relative_to(folder).as_posix()
            if existing.get(key) == path.stat().st_size:
                summary.skipped += 1
            else:
                pending.append((path, key))
        progress = Progress(sum(p.stat().st_size for p, _ in pending), out)
        for path, key in pending:
            progress.start(key, path.stat().st_size)
            s3.upload_file(str(path), bucket, key, Config=config, Callback=progress.advance)
            summary.uploaded += 1
            summary.bytes_sent += path.stat().st_size
    except NoCredentialsError:
        raise UploadError("no AWS credentials: configure them (aws configure, AWS_PROFILE or env vars)") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise UploadError(f"S3 refused the upload to s3://{bucket}/{prefix} ({code}): {exc}") from None
    summary.seconds = time.monotonic() - started
    return summary


def _existing_sizes(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def main(argv: Sequence[str] | None = None, s3_factory: Callable[[], Any] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "model_id", nargs="?", help="one Hugging Face model id, e.g. togethercomputer/GPT-JT-Moderation-6B"
    )
    parser.add_argument("s3_uri", nargs="?", help="its destination, e.g. s3://my-bucket/flan-t5/")
    parser.add_argument("--for-config", metavar="S3_PREFIX", help="stage every LLM of a configuration under it")
    parser.add_argument("--chat-model", default="gpt-neoxt-chat", help="with --for-config: ragchat:chat_model")
    parser.add_argument("--moderation", default="endpoint", help="with --for-config: ragchat:moderation")
    parser.add_argument(
        "--revision", help="a branch, tag or commit to stage (default: the model's pinned commit, else main)"
    )
    parser.add_argument(
        "--include", action="append", help="file patterns to copy (repeatable; default: weights+config)"
    )
    parser.add_argument("--from-dir", type=Path, help="upload this local snapshot instead of downloading")
    parser.add_argument("--cache-dir", type=Path, default=Path(".data/weights"), help="where the snapshot is kept")
    parser.add_argument("--hub-endpoint", help=argparse.SUPPRESS)  # tests: a local stand-in for the hub
    args = parser.parse_args(argv)
    return reporting_failures(lambda: _run(args, s3_factory))


def _run(args: argparse.Namespace, s3_factory: Callable[[], Any] | None) -> int:
    if args.for_config:
        if args.model_id or args.from_dir:
            raise UploadError("--for-config stages the configuration's models: give no model id or --from-dir")
        bucket, root = parse_s3_uri(args.for_config)
        flags = []
        for setting, model_id in configuration_models(args.chat_model, args.moderation):
            revision = args.revision or PINNED_REVISIONS.get(model_id)  # the catalog's pin, if any
            commit = resolve_commit(model_id, revision, args.hub_endpoint)
            prefix = f"{root}{model_id.split('/')[-1].lower()}/{commit}/"
            _stage(args, model_id, commit, bucket, prefix, s3_factory)
            flags.append(f"-c ragchat:{setting}=s3://{bucket}/{prefix}")
        print("deploy with: npx cdk deploy " + " ".join(flags))
        return 0
    if not (args.model_id and args.s3_uri):
        raise UploadError("give a model id and an s3:// destination, or --for-config s3://bucket/prefix/")
    bucket, prefix = parse_s3_uri(args.s3_uri)
    revision = args.revision or PINNED_REVISIONS.get(args.model_id)  # the catalog's pin, if any
    _stage(args, args.model_id, revision, bucket, prefix, s3_factory)
    print(f"deploy with: npx cdk deploy -c ragchat:chat_model_s3_uri=s3://{bucket}/{prefix}")
    return 0


def reporting_failures(command: Callable[[], int]) -> int:
    """Run a staging command the way the user should see it fail: an UploadError as its
    message (exit 2), an interruption as the hint that the same command resumes (exit 130)."""
    try:
        return command()
    except UploadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130


def upload_and_report(folder: Path, bucket: str, prefix: str, s3_factory: Callable[[], Any] | None) -> None:
    """Upload a staged folder (skipping what is already there) and print what was sent, how
    fast, and what was already in S3."""
    if not files_to_upload(folder):
        raise UploadError(f"{folder} has no files to upload")
    summary = upload(folder, bucket, prefix, s3_factory() if s3_factory else _s3_client())
    rate = summary.bytes_sent / MIB / summary.seconds if summary.seconds else 0.0
    print(
        f"s3://{bucket}/{prefix}: {summary.uploaded} uploaded ({summary.bytes_sent / MIB:,.1f} MiB, {rate:,.1f} MiB/s),"
        f" {summary.skipped} already there"
    )


def _stage(
    args: argparse.Namespace,
    model_id: str,
    revision: str | None,
    bucket: str,
    prefix: str,
    s3_factory: Callable[[], Any] | None,
) -> None:
    """Download (or take --from-dir) and upload one model; prints its summary."""
    if args.from_dir:
        if not args.from_dir.is_dir():
            raise UploadError(f"--from-dir {args.from_dir} is not a folder")
        folder = args.from_dir
        if args.include:
            print("--include applies to downloads; --from-dir uploads the whole folder", file=sys.stderr)
    else:
        local_dir = args.cache_dir / model_id.replace("/", "--") / (revision or "main")
        folder = download(model_id, revision, args.include, local_dir, args.hub_endpoint)
    upload_and_report(folder, bucket, prefix, s3_factory)


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3")


if __name__ == "__main__":
    sys.exit(main())
