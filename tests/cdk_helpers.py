"""Synthesizing the CDK app in tests: cdk-nag included, bundling skipped."""

import json
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


def synth(**settings) -> tuple[dict, Path]:
    """Synthesize with cdk-nag (bundling skipped: no pip, no Docker); raises on any
    unacknowledged finding. Returns the template and the cloud assembly folder."""
    outdir = Path(tempfile.mkdtemp(prefix="cdk-test-"))
    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    stack = RagChatStack(app, "RagChat", config=DeploymentConfig(**settings))
    acknowledge_findings(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return json.loads((outdir / "RagChat.template.json").read_text()), outdir


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v["Properties"] | {"_raw": v} for k, v in template["Resources"].items() if v["Type"] == kind}


def cfn_lint_errors(templates: list[Path], regions: tuple[str, ...] = ("us-east-1", "eu-west-1")) -> tuple[list, str]:
    """cfn-lint's errors (warnings ignored) over the templates, linted for the regions, and
    every finding as text. Through cfn-lint's API: a linter that did not run cannot pass."""
    from cfnlint.api import ManualArgs, lint_file

    assert templates, "no template to lint"
    matches = [m for t in templates for m in lint_file(Path(t), ManualArgs(regions=list(regions)))]
    return [m for m in matches if m.rule.severity == "error"], "\n".join(map(str, matches))
