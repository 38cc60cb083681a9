"""Stage what the Wikipedia retrieval endpoint serves into your S3 prefix: the dataset
`ChristophSchuhmann/wikipedia-3sentence-level-retrieval-index` (knn.index and
wikipedia-en-sentences.parquet) and the query encoder `facebook/contriever-msmarco`.

    python model_code/stage_wikipedia.py s3://my-bucket/wikipedia/
    npx cdk deploy -c ragchat:knowledge_base=wikipedia -c ragchat:wikipedia_s3_uri=s3://my-bucket/wikipedia/

The prefix then holds the folder the endpoint reads as /opt/ml/model: the two dataset files,
encoder/ (the model's weights, config and tokenizer) and retrieval.json (the encoder's
settings). Resumable like upload_weights.py: downloads resume partial files and the upload
skips objects already in S3 at the same size, so after an interruption run it again."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upload_weights import (
    UploadError,
    _size,
    parse_s3_uri,
    reporting_failures,
    upload_and_report,
    weight_patterns,
)
from wikipedia_retrieval.handler import IndexConfig

DATASET = "ChristophSchuhmann/wikipedia-3sentence-level-retrieval-index"
DATASET_FILES = ("knn.index", "wikipedia-en-sentences.parquet")
ENCODER = "facebook/contriever-msmarco"


def fetch(
    repo_id: str,
    repo_type: str,
    revision: str | None,
    patterns: Sequence[str] | None,
    local_dir: Path,
    endpoint: str | None,
) -> int:
    """Download (resuming partial files) the repository's files matching `patterns`, after
    saying how much will come and checking the disk can hold it. Returns the bytes."""
    from fnmatch import fnmatch

    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi(endpoint=endpoint)
    where = f"{repo_id}@{revision or 'main'}"
    try:
        tree = [f for f in api.list_repo_tree(repo_id, repo_type=repo_type, revision=revision, recursive=True)
                if getattr(f, "size", None) is not None]  # fmt: skip
        if patterns is None:
            patterns = weight_patterns(f.path for f in tree)
        wanted = [f for f in tree if any(fnmatch(f.path, p) for p in patterns)]
        missing = [p for p in patterns if "*" not in p and not any(f.path == p for f in wanted)]
        if missing:
            raise UploadError(f"{where} has no {', '.join(missing)}")
        total = sum(f.size for f in wanted)
        local_dir.mkdir(parents=True, exist_ok=True)
        have = sum(p.stat().st_size for p in local_dir.rglob("*") if p.is_file() and ".cache" not in p.parts)
        free = shutil.disk_usage(local_dir).free
        if total - have > free:
            raise UploadError(f"{where} needs {_size(total - have)} more on disk, {local_dir} has {_size(free)} free")
        print(f"downloading {where}: {len(wanted)} files, {_size(total)} to {local_dir}", file=sys.stderr)
        snapshot_download(
            repo_id, repo_type=repo_type, revision=revision, allow_patterns=list(patterns), local_dir=local_dir,
            endpoint=endpoint,
        )  # fmt: skip
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise UploadError(f"{where} not found on the hub: {exc}") from None
    except HfHubHTTPError as exc:
        raise UploadError(f"hub download failed ({exc}); run the same command again to resume") from None
    return total


def stage(args: argparse.Namespace) -> Path:
    """The folder the endpoint will read, complete on local disk."""
    folder = args.cache_dir
    fetch(DATASET, "dataset", args.dataset_revision, DATASET_FILES, folder, args.hub_endpoint)
    config = IndexConfig(encoder_id=ENCODER)
    fetch(ENCODER, "model", args.encoder_revision, None, folder / config.encoder_dir, args.hub_endpoint)
    config.save(folder)
    return folder


def main(argv: Sequence[str] | None = None, s3_factory: Callable[[], Any] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("s3_uri", help="destination, e.g. s3://my-bucket/wikipedia/")
    parser.add_argument("--dataset-revision", help="a commit of the dataset to pin (default: main)")
    parser.add_argument("--encoder-revision", help="a commit of facebook/contriever-msmarco to pin (default: main)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".data/wikipedia-stage"), help="local staging folder")
    parser.add_argument("--hub-endpoint", help=argparse.SUPPRESS)  # tests: a local stand-in for the hub
    args = parser.parse_args(argv)

    def run() -> int:
        bucket, prefix = parse_s3_uri(args.s3_uri)
        upload_and_report(stage(args), bucket, prefix, s3_factory)
        print(
            "deploy with: npx cdk deploy -c ragchat:knowledge_base=wikipedia "
            f"-c ragchat:wikipedia_s3_uri=s3://{bucket}/{prefix}"
        )
        return 0

    return reporting_failures(run)


if __name__ == "__main__":
    sys.exit(main())
