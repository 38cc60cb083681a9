"""`ragchat preflight [-c ragchat:KEY=VALUE ...] [--region R] [--profile P]`: the same
configuration flags as `cdk deploy`, read the same way (cdk.json's context, then `-c`),
checked in the account and region the credentials point at. Exit 1 when a check fails."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from botocore.config import Config

from .checks import (
    Needs,
    Result,
    check_bedrock_model,
    check_bootstrap,
    check_lambda_concurrency,
    check_pinecone_key,
    check_quotas,
    check_region,
    check_staged_weights,
    failed,
    render,
    stack_reservations,
)

PROJECT = Path(__file__).resolve().parents[3]  # the checkout: cdk.json, stacks/
# the Bedrock probe: one attempt (a refusal is the answer), and no long wait on a slow model
BEDROCK_PROBE_CLIENT = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 1})


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "preflight",
        help="check the account and region before a deploy",
        description="Checks quotas, region support, a Bedrock chat model, the CDK bootstrap, staged weights and "
        "the Pinecone key for the configuration `cdk deploy` would deploy, and says how to fix each failure.",
    )
    p.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                   help="a context value, as for cdk deploy (e.g. -c ragchat:moderation=comprehend)")  # fmt: skip
    p.add_argument("--region", help="target region (default: from the AWS configuration)")
    p.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
    p.add_argument("--project", type=Path, default=PROJECT, help="the project folder holding cdk.json")
    p.set_defaults(run=run)


def load_context(project: Path, overrides: list[str]) -> dict[str, Any]:
    """cdk.json's context, cdk.context.json, then each -c KEY=VALUE (a string, as the CLI passes it)."""
    context: dict[str, Any] = {}
    for name in ("cdk.json", "cdk.context.json"):
        path = project / name
        if path.exists():
            data = json.loads(path.read_text())
            context.update(data.get("context", {}) if name == "cdk.json" else data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"-c {item}: expected KEY=VALUE")
        context[key.strip()] = value
    return context


def deployment_config(project: Path, overrides: list[str]) -> Any:
    """The stack's own DeploymentConfig (stacks/config.py), so preflight and synth agree."""
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    from stacks.config import DeploymentConfig

    return DeploymentConfig.from_context(load_context(project, overrides))


def run(args: argparse.Namespace) -> int:
    import boto3

    try:
        config = deployment_config(args.project, args.context)
    except ValueError as exc:  # ConfigError names the key
        print(f"Invalid configuration: {exc}", file=sys.stderr)
        return 2
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    region = session.region_name
    if not region:
        print("error: no region: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    results = run_checks(session, config, region)
    print(f"ragchat preflight: {region}, chat model {config.chat_model}, moderation {config.moderation}\n")
    print(render(results))
    if failed(results):
        print("\nPreflight failed: fix the checks marked FAIL before `cdk deploy`.")
        return 1
    print("\nPreflight passed.")
    return 0


def run_checks(session: Any, config: Any, region: str) -> list[Result]:
    from stacks.region_facts import container_problem, function_url_problem

    from ..aws.factory import secret_region

    try:
        account = session.client("sts").get_caller_identity()["Account"]
    except Exception as exc:  # no credentials, expired token, no network: nothing else can run
        return [Result("AWS credentials", "FAIL", f"cannot identify the caller ({type(exc).__name__}: {exc})",
                       "configure credentials (aws configure / aws sso login) or pass --profile")]  # fmt: skip
    needs = Needs(
        region=region,
        account=account,
        endpoint_instances=config.endpoint_instances(),
        reserved_concurrency=config.reserved_concurrency(),
        stack_name=config.stack_name,
        pinecone_secret_arn=config.pinecone_secret_arn,
        bedrock_model_id=config.resolved_bedrock_model_id if config.model.backend == "bedrock" else "",
        staged_weights={
            key: getattr(config, key)
            for key in ("chat_model_s3_uri", "moderation_model_s3_uri")
            if getattr(config, key, "") and not config.parked
        },
    )
    results = [Result("AWS credentials", "pass", f"account {account}")]
    results += check_region(needs, container_problem(region), function_url_problem(region))
    results += check_quotas(session.client("service-quotas"), needs)
    if needs.bedrock_model_id and not config.parked:
        results.append(check_bedrock_model(session.client("bedrock-runtime", config=BEDROCK_PROBE_CLIENT), needs))
    cloudformation, lambda_client = session.client("cloudformation"), session.client("lambda")
    results.append(check_bootstrap(cloudformation, needs))
    results += check_staged_weights(session.client("s3"), needs)
    held = stack_reservations(cloudformation, lambda_client, needs.stack_name) if needs.reserved_concurrency else 0
    results.append(check_lambda_concurrency(lambda_client, needs, held))
    secrets_region = secret_region(needs.pinecone_secret_arn) or region
    results.append(check_pinecone_key(session.client("secretsmanager", region_name=secrets_region), needs))
    return results
