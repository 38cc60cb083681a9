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
    for left_out in ("local", "ingest", "client"):
        assert not (bundle / "ragchat" / left_out).exists(), left_out
    assert imports_of("ragchat.aws.server", bundle) >= {"ragchat.catalog", "ragchat.app", "ragchat.aws.settings"}
    assert list((bundle / "pydantic_core").glob("*cpython-314-x86_64-linux-gnu.so")), "wheels for the Lambda runtime"
    for package in ("boto3", "botocore", "pinecone", "aws_lambda_powertools", "starlette", "uvicorn"):
        assert (bundle / package / "__init__.py").exists(), package
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    assert size < 250 * 1024 * 1024, f"the Lambda's unzipped limit is 250 MB; the bundle is {size / 2**20:.0f} MB"


def imports_of(module: str, root) -> set[str]:
    """The project modules `module` imports, transitively, read from the files under
    `root`; fails naming any that is not there (a module the allow-list left out)."""
    import ast

    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = root.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert path.is_file(), f"{name} is imported by the function but not in its bundle"
        seen.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            for candidate in candidates:
                if candidate.split(".")[0] != "ragchat":
                    continue
                candidate_path = root.joinpath(*candidate.split("."))
                if candidate_path.is_dir() or candidate_path.with_suffix(".py").is_file() or candidate == target:
                    todo.append(candidate)
    return seen


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


def allowed_files(tmp_path, leave_out: str = ""):
    """What the function's allow-list ships of lambda/ragchat, copied under tmp_path."""
    from stacks.bundling import PipInstallBundling
    from stacks.chat_stack import LAMBDA_FILES, LAMBDA_SOURCE

    bundling = PipInstallBundling(LAMBDA_SOURCE, "ragchat", LAMBDA_SOURCE / "requirements.txt", LAMBDA_FILES)
    for name in bundling.files():
        if str(name) != leave_out:
            (tmp_path / "ragchat" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(LAMBDA_SOURCE / "ragchat" / name, tmp_path / "ragchat" / name)
    return tmp_path


def test_the_allow_list_ships_what_the_function_imports_and_the_check_sees_a_gap(tmp_path):
    shipped = allowed_files(tmp_path / "all")
    assert "ragchat.payloads" in imports_of("ragchat.aws.server", shipped)
    assert not (shipped / "ragchat" / "cli.py").exists() and not (shipped / "ragchat" / "local").exists()
    with pytest.raises(AssertionError, match="ragchat.payloads is imported by the function but not in its bundle"):
        imports_of("ragchat.aws.server", allowed_files(tmp_path / "gap", leave_out="payloads.py"))
