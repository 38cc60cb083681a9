"""upload_weights.py: snapshot download from the hub (a stand-in speaking its API), upload
to S3 (moto server) with progress, and resume after an interruption."""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from conftest import PROJECT_ROOT, load_module
from standins.hf_hub import COMMIT, HubStandIn

REPO = "togethercomputer/tiny-chat"
BUCKET = "weights-bucket"


script = load_module(PROJECT_ROOT / "model_code" / "upload_weights.py", "upload_weights")


@pytest.fixture
def repo_folder(tmp_path) -> Path:
    """A model repository with both weight formats, as many hub repos have."""
    folder = tmp_path / "repo"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt_neox"}')
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"\x01" * 300_000)
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"\x02" * 200_000)
    (folder / "pytorch_model.bin").write_bytes(b"\x03" * 400_000)
    (folder / "README.md").write_text("# tiny")
    (folder / "sub" / "notes.txt").write_text("nested")
    return folder


@pytest.fixture
def hub(repo_folder):
    server = HubStandIn(REPO, repo_folder)
    yield server
    server.close()


@pytest.fixture
def s3(moto_url, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_url)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(s3) -> dict[str, int]:
    return {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def run(args: list[str], s3, capsys) -> tuple[int, str, str]:
    code = script.main(args, s3_factory=lambda: s3)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_download_then_upload_copies_weights_and_configs_only(hub, s3, tmp_path, capsys):
    code, out, err = run(
        [REPO, f"s3://{BUCKET}/tiny/", "--cache-dir", str(tmp_path / "cache"), "--hub-endpoint", hub.url], s3, capsys
    )

    assert code == 0, err
    assert keys(s3) == {
        "tiny/config.json": 26,
        "tiny/tokenizer.json": 18,
        "tiny/model-00001-of-00002.safetensors": 300_000,
        "tiny/model-00002-of-00002.safetensors": 200_000,
        "tiny/sub/notes.txt": 6,
    }, "safetensors only (no .bin copy), no README"
    assert "pytorch_model.bin" not in hub.downloads()
    assert "total" in err and "100.0%" in err
    assert "5 uploaded" in out and "chat_model_s3_uri=s3://weights-bucket/tiny/" in out


def test_a_second_run_skips_what_is_already_there(hub, s3, tmp_path, capsys):
    args = [REPO, f"s3://{BUCKET}/tiny", "--cache-dir", str(tmp_path / "cache"), "--hub-endpoint", hub.url]
    assert run(args, s3, capsys)[0] == 0
    hub.reset()

    code, out, _ = run(args, s3, capsys)

    assert code == 0 and "0 uploaded" in out and "5 already there" in out
    assert hub.downloads() == [], "the snapshot is reused, not fetched again"


def test_an_interrupted_upload_resumes_where_it_stopped(repo_folder, s3, capsys):
    class FailsAfterTwo:
        """S3 that drops the connection on the third file."""

        def __init__(self, client) -> None:
            self.client, self.calls = client, 0

        def __getattr__(self, name):
            return getattr(self.client, name)

        def upload_file(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.client.upload_file(*args, **kwargs)

    flaky = FailsAfterTwo(s3)
    code, _, err = run([REPO, f"s3://{BUCKET}/resume/", "--from-dir", str(repo_folder)], flaky, capsys)
    assert code == 130 and "run the same command again" in err
    assert len(keys(s3)) == 2

    code, out, _ = run([REPO, f"s3://{BUCKET}/resume/", "--from-dir", str(repo_folder)], s3, capsys)

    assert code == 0 and "5 uploaded" in out and "2 already there" in out
    assert len(keys(s3)) == 7, "--from-dir uploads the whole folder"


def test_multipart_upload_reports_progress_per_part(repo_folder, s3):
    out = io.StringIO()
    small_parts = TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    big = repo_folder / "big.safetensors"
    big.write_bytes(b"\x05" * (12 * 1024**2))

    summary = script.upload(repo_folder, BUCKET, "multi/", s3, out=out, transfer_config=small_parts)

    assert summary.uploaded == 8 and keys(s3)["multi/big.safetensors"] == 12 * 1024**2
    assert "multi/big.safetensors" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody/missing", "s3://weights-bucket/x/"], "not found on the hub"),
        ([REPO, "s3://weights-bucket/x/", "--revision", "v9"], "not found on the hub"),
        ([REPO, "https://example.com/x"], "not an s3://bucket/prefix URI"),
        ([REPO, "s3://weights-bucket/x/", "--from-dir", "/nonexistent"], "is not a folder"),
    ],
)
def test_failures_are_explained(hub, s3, tmp_path, capsys, args, message):
    code, _, err = run([*args, "--cache-dir", str(tmp_path / "cache"), "--hub-endpoint", hub.url], s3, capsys)
    assert code == 2 and message in err


def test_missing_bucket_and_missing_credentials_are_explained(
    repo_folder, moto_url, monkeypatch, capsys, no_aws_credentials
):
    no_credentials = boto3.session.Session().client("s3", endpoint_url=moto_url, region_name="us-east-1")
    code, _, err = run([REPO, "s3://weights-bucket/x/", "--from-dir", str(repo_folder)], no_credentials, capsys)
    assert code == 2 and "no AWS credentials" in err

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.session.Session().client("s3", endpoint_url=moto_url, region_name="us-east-1")
    code, _, err = run([REPO, "s3://no-such-bucket/x/", "--from-dir", str(repo_folder)], client, capsys)
    assert code == 2 and "NoSuchBucket" in err


def test_a_pinned_revision_is_downloaded(hub, s3, tmp_path, capsys):
    code, _, err = run(
        [REPO, f"s3://{BUCKET}/pinned/", "--revision", COMMIT, "--cache-dir", str(tmp_path / "c"),
         "--hub-endpoint", hub.url],
        s3,
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert any(COMMIT in r.path for r in hub.requests)


def test_one_command_stages_a_configurations_models_under_their_commit(repo_folder, s3, tmp_path, capsys):
    """flan-t5 with Comprehend moderation: one LLM, staged under the commit `main` resolved
    to, and the deploy flag that points the stack at it."""
    hub = HubStandIn("google/flan-t5-xl", repo_folder)
    try:
        args = ["--for-config", f"s3://{BUCKET}/ragchat/", "--chat-model", "flan-t5", "--moderation", "comprehend",
                "--cache-dir", str(tmp_path / "cache"), "--hub-endpoint", hub.url]  # fmt: skip
        code, out, err = run(args, s3, capsys)
    finally:
        hub.close()
    assert code == 0, err
    prefix = f"ragchat/flan-t5-xl/{COMMIT}/"
    assert f"{prefix}config.json" in keys(s3) and all(k.startswith(prefix) for k in keys(s3))
    assert f"deploy with: npx cdk deploy -c ragchat:chat_model_s3_uri=s3://{BUCKET}/{prefix}" in out
    assert "moderation_model_s3_uri" not in out


def test_hub_mode_and_staging_use_the_pinned_revision_of_each_llm(repo_folder, s3, tmp_path, capsys):
    """GPT-NeoXT and GPT-JT-Moderation pin option.revision in their serving.properties (what
    hub mode loads); staging fetches that same commit, not main: the hub here knows only it."""
    from stacks.chat_stack import MODEL_CODE
    from stacks.weights import read_properties

    pins = {}
    for folder in ("chat_llm", "moderation_llm"):
        properties = read_properties(MODEL_CODE / folder / "serving.properties")
        assert re.fullmatch(r"[0-9a-f]{40}", properties["option.revision"]), folder
        pins[properties["option.model_id"]] = properties["option.revision"]
        assert script.PINNED_REVISIONS[properties["option.model_id"]] == properties["option.revision"]
    moderation = script.MODERATION_MODEL
    # the pin resolves to the stand-in's COMMIT; flan-t5 pins nothing, so main for it
    hub = HubStandIn(moderation, repo_folder, revisions=(pins[moderation], "main", COMMIT))
    hub.add_repo("google/flan-t5-xl", repo_folder)
    try:
        args = ["--for-config", f"s3://{BUCKET}/ragchat/", "--chat-model", "flan-t5", "--cache-dir",
                str(tmp_path / "cache"), "--hub-endpoint", hub.url]  # fmt: skip
        code, out, err = run(args, s3, capsys)
    finally:
        hub.close()
    assert code == 0, err
    asked = [unquote(r.path) for r in hub.requests if moderation in unquote(r.path)]
    assert any(pins[moderation] in path for path in asked), asked
    assert not [path for path in asked if "/main" in path], "the pin, never main"
    assert "moderation_model_s3_uri=s3://" in out


def test_the_configuration_models_are_the_ones_the_stack_deploys():
    from ragchat.catalog import chat_model
    from stacks.chat_stack import MODEL_CODE
    from stacks.weights import read_properties

    assert script.CHAT_MODELS["flan-t5"] == chat_model("flan-t5").serving.environment["HF_MODEL_ID"]
    assert (
        script.CHAT_MODELS["qwen2.5-7b-instruct"]
        == chat_model("qwen2.5-7b-instruct").serving.environment["HF_MODEL_ID"]
    )
    assert (
        script.PINNED_REVISIONS[script.CHAT_MODELS["qwen2.5-7b-instruct"]]
        == (chat_model("qwen2.5-7b-instruct").serving.environment["OPTION_REVISION"])
    )
    chat = read_properties(MODEL_CODE / "chat_llm" / "serving.properties")["option.model_id"]
    moderation = read_properties(MODEL_CODE / "moderation_llm" / "serving.properties")["option.model_id"]
    assert script.CHAT_MODELS["gpt-neoxt-chat"] == chat and moderation == script.MODERATION_MODEL
    assert [s for s, _ in script.configuration_models("gpt-neoxt-chat", "endpoint")] == [
        "chat_model_s3_uri",
        "moderation_model_s3_uri",
    ]
    with pytest.raises(script.UploadError, match="llama-2-chat: weights can be staged for"):
        script.configuration_models("llama-2-chat", "off")
