"""Synthesizing the CDK app in tests: cdk-nag included, bundling skipped."""

import atexit
import functools
import json
import shutil
import sys
import tempfile
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stacks.chat_stack import RagChatStack  # noqa: E402
from stacks.config import DeploymentConfig  # noqa: E402
from stacks.nag import acknowledge_findings  # noqa: E402

# Configurations several test files read, through synth_once
STAGED_WEIGHTS = {
    "chat_model_s3_uri": "s3://my-bucket/staged/neoxt",
    "moderation_model_s3_uri": "s3://my-bucket/staged/jt/",
}
WIKIPEDIA = {"knowledge_base": "wikipedia", "wikipedia_s3_uri": "s3://my-bucket/wikipedia/"}


@functools.cache
def synth_root() -> Path:
    """The folder of this process's cloud assemblies, removed when the process exits (each
    synth writes a few MB; thousands of them used to stay in /tmp)."""
    root = Path(tempfile.mkdtemp(prefix="cdk-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def synth(**settings) -> tuple[dict, Path]:
    """Synthesize with cdk-nag (bundling skipped: no pip, no Docker); raises on any
    unacknowledged finding. Returns the template and the cloud assembly folder."""
    outdir = Path(tempfile.mkdtemp(prefix="cdk-test-", dir=synth_root()))
    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    config = DeploymentConfig(**settings)
    stack = RagChatStack(app, config.stack_name, config=config)
    acknowledge_findings(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return json.loads((outdir / f"{config.stack_name}.template.json").read_text()), outdir


def synth_once(**settings) -> tuple[dict, Path]:
    """`synth`, once per configuration in a test session: for the fixtures of several test
    files that read the same configuration (the template is shared: copy it to change it)."""
    return _synth_once(tuple(sorted(settings.items())))


@functools.cache
def _synth_once(settings: tuple) -> tuple[dict, Path]:
    return synth(**dict(settings))


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v["Properties"] | {"_raw": v} for k, v in template["Resources"].items() if v["Type"] == kind}


def cfn_lint_errors(templates: list[Path], regions: tuple[str, ...] = ("us-east-1", "eu-west-1")) -> tuple[list, str]:
    """cfn-lint's errors (warnings ignored) over the templates, linted for the regions, and
    every finding as text. Through cfn-lint's API: a linter that did not run cannot pass."""
    from cfnlint.api import ManualArgs, lint_file

    assert templates, "no template to lint"
    matches = [m for t in templates for m in lint_file(Path(t), ManualArgs(regions=list(regions)))]
    return [m for m in matches if m.rule.severity == "error"], "\n".join(map(str, matches))
