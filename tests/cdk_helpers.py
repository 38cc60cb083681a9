"""Synthesizing the CDK app in tests: cdk-nag included, bundling skipped."""

import json
import subprocess
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


def cfn_lint_errors(templates: list[Path]) -> tuple[list[str], str]:
    """cfn-lint's error lines (warnings ignored) over the templates, and its full output."""
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", *map(str, templates)], capture_output=True, text=True
    )
    return [line for line in result.stdout.splitlines() if ":E" in line], result.stdout
