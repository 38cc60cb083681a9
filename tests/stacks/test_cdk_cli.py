"""`cdk synth` through the pinned CLI, as a user runs it: no AWS credentials, no Docker.
Bundling runs for real (pip for the Lambda's platform, tar for the model archives)."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from cdk_helpers import ROOT, cfn_lint_errors

CDK = ROOT / "node_modules" / ".bin" / "cdk"


@pytest.fixture(scope="module")
def cloud_assembly(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("cdk.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}")
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # prove Docker is not needed
    result = subprocess.run(
        [str(CDK), "synth", "-q", "-o", str(outdir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return outdir


def test_synth_produces_template_and_bundled_assets(cloud_assembly):
    template = json.loads((cloud_assembly / "RagChat.template.json").read_text())
    assert template["Resources"]
    archives = sorted(cloud_assembly.glob("asset.*.tar.gz"))
    names = set()
    for archive in archives:
        with tarfile.open(archive) as tar:
            names |= set(tar.getnames())
    assert {"serving.properties", "code/inference.py"} <= names
    lambda_assets = [p for p in cloud_assembly.glob("asset.*") if (p / "run.sh").exists()]
    assert len(lambda_assets) == 1
    bundle = lambda_assets[0]
    assert (bundle / "ragchat" / "engine.py").exists() and (bundle / "ragchat" / "aws" / "server.py").exists()
    assert not (bundle / "ragchat" / "local").exists() and not (bundle / "ragchat" / "ingest").exists()
    assert list((bundle / "pydantic_core").glob("*cpython-314-x86_64-linux-gnu.so")), "wheels for the Lambda runtime"
    for package in ("boto3", "botocore", "pinecone", "aws_lambda_powertools", "starlette", "uvicorn"):
        assert (bundle / package / "__init__.py").exists(), package
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    assert size < 250 * 1024 * 1024, f"the Lambda's unzipped limit is 250 MB; the bundle is {size / 2**20:.0f} MB"


def test_cfn_lint_clean_on_synthesized_templates(cloud_assembly):
    errors, output = cfn_lint_errors(list(cloud_assembly.glob("*.template.json")))
    assert errors == [], output


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (["ragchat:moderation=sometimes"], "ragchat:moderation: must be one of endpoint, comprehend, off"),
        (["ragchat:chat_model=llama-2-chat"], "ragchat:accept_llama2_eula: llama-2-chat is served under"),
    ],
)
def test_invalid_configuration_fails_synth_naming_the_key(tmp_path, context, message):
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    options = [arg for item in context for arg in ("-c", item)]
    result = subprocess.run(
        [str(CDK), "synth", "-q", "-o", str(tmp_path), *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)
