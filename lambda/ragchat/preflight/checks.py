"""The preflight checks: each asks one AWS API (or the vendored region facts) and returns a
pass, a warning or a failure with the command or console step that fixes it.

Every check takes its boto3 client, so tests point them at local stand-ins of the same
wire contracts (Service Quotas, CloudFormation, Secrets Manager, Lambda)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..catalog import endpoint_quota_name

PASS, WARN, FAIL = "pass", "warn", "FAIL"
BOOTSTRAP_STACK = "CDKToolkit"
MIN_BOOTSTRAP_VERSION = 6  # what the templates of aws-cdk-lib 2.x require
HEALTHY_STACK = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
LAMBDA_UNRESERVED_FLOOR = 100  # Lambda keeps this much account concurrency unreserved
BEDROCK_PROBE = "Reply with OK."  # one user turn, answered with at most one token


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Needs:
    """What a configuration needs from the account and region."""

    region: str
    account: str
    endpoint_instances: Mapping[str, int] = field(default_factory=dict)  # instance type -> instances
    reserved_concurrency: int = 0
    stack_name: str = "RagChat"  # an already deployed stack's own reservations count as free
    pinecone_secret_arn: str = ""  # empty: the stack creates the secret
    staged_weights: Mapping[str, str] = field(default_factory=dict)  # setting -> s3://bucket/prefix/
    bedrock_model_id: str = ""  # chat_model=bedrock: the model or inference profile the function calls


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")
    return type(exc).__name__


def sagemaker_quotas(client: Any) -> dict[str, tuple[str, float]]:
    """Quota name -> (quota code, applied value) for every SageMaker quota of the account."""
    quotas: dict[str, tuple[str, float]] = {}
    for page in client.get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker"):
        for quota in page.get("Quotas", []):
            quotas[quota["QuotaName"]] = (quota["QuotaCode"], float(quota.get("Value", 0)))
    return quotas


def check_quotas(client: Any, needs: Needs) -> list[Result]:
    if not needs.endpoint_instances:
        return [Result("endpoint quotas", PASS, "this configuration runs no SageMaker endpoint")]
    try:
        quotas = sagemaker_quotas(client)
    except (ClientError, BotoCoreError) as exc:
        fix = "allow servicequotas:ListServiceQuotas to the identity running preflight"
        return [Result("endpoint quotas", FAIL, f"cannot read the SageMaker quotas ({_error(exc)})", fix)]
    results = []
    for instance_type, count in sorted(needs.endpoint_instances.items()):
        name = endpoint_quota_name(instance_type)
        check = f"quota: {name}"
        if name not in quotas:
            fix = "choose an instance type offered here (-c ragchat:*_instance_type=...) or another region"
            results.append(Result(check, FAIL, f"no such quota: {instance_type} is not offered in {needs.region}", fix))
            continue
        code, value = quotas[name]
        if value < count:
            fix = (
                f"aws service-quotas request-service-quota-increase --region {needs.region} "
                f"--service-code sagemaker --quota-code {code} --desired-value {count}"
            )
            results.append(Result(check, FAIL, f"{value:g} allowed, {count} needed", fix))
        else:
            results.append(Result(check, PASS, f"{value:g} allowed, {count} needed"))
    return results


def check_region(needs: Needs, container_problem: str | None, function_url_problem: str | None) -> list[Result]:
    """The vendored region facts (stacks/region_facts.py), the same ones synth enforces."""
    return [
        Result("region: model containers", FAIL if container_problem else PASS,
               container_problem or f"Deep Learning Containers are published in {needs.region}",
               "deploy in another region" if container_problem else ""),
        Result("region: Function URLs", FAIL if function_url_problem else PASS,
               function_url_problem or f"Lambda Function URLs are offered in {needs.region}",
               "deploy in another region" if function_url_problem else ""),
    ]  # fmt: skip


def check_bootstrap(client: Any, needs: Needs) -> Result:
    fix = f"npx cdk bootstrap aws://{needs.account}/{needs.region}"
    try:
        (stack,) = client.describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
    except ClientError as exc:
        if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
            return Result("CDK bootstrap", FAIL, f"no {BOOTSTRAP_STACK} stack in {needs.region}", fix)
        return Result("CDK bootstrap", FAIL, f"cannot read the {BOOTSTRAP_STACK} stack ({_error(exc)})", fix)
    except BotoCoreError as exc:
        return Result("CDK bootstrap", FAIL, f"cannot read the {BOOTSTRAP_STACK} stack ({_error(exc)})", fix)
    status = stack.get("StackStatus", "")
    if status not in HEALTHY_STACK:
        return Result("CDK bootstrap", FAIL, f"{BOOTSTRAP_STACK} is {status}", fix)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    version = outputs.get("BootstrapVersion", "")
    if not version.isdigit() or int(version) < MIN_BOOTSTRAP_VERSION:
        detail = f"bootstrap version {version or 'unknown'}, at least {MIN_BOOTSTRAP_VERSION} needed"
        return Result("CDK bootstrap", FAIL, detail, fix)
    return Result("CDK bootstrap", PASS, f"{BOOTSTRAP_STACK} {status}, version {version}")


def check_pinecone_key(client: Any, needs: Needs, env: Mapping[str, str] | None = None) -> Result:
    """Whether the key is set, never what it is."""
    env = os.environ if env is None else env
    if not needs.pinecone_secret_arn:
        if env.get("PINECONE_API_KEY"):
            return Result("Pinecone key", PASS, "in $PINECONE_API_KEY: store it after deploy (SetPineconeKeyCommand)")
        return Result(
            "Pinecone key",
            WARN,
            "the stack creates a placeholder secret; retrieval fails until the key is stored",
            "after deploy, run the stack output SetPineconeKeyCommand with your key in $PINECONE_API_KEY",
        )
    try:
        value = client.get_secret_value(SecretId=needs.pinecone_secret_arn).get("SecretString") or ""
    except (ClientError, BotoCoreError) as exc:
        fix = "create the secret, or allow secretsmanager:GetSecretValue on it to the identity running preflight"
        return Result("Pinecone key", FAIL, f"cannot read {needs.pinecone_secret_arn} ({_error(exc)})", fix)
    if not value.strip():
        fix = f'aws secretsmanager put-secret-value --secret-id {needs.pinecone_secret_arn} --secret-string "$KEY"'
        return Result("Pinecone key", FAIL, "the secret is empty", fix)
    return Result("Pinecone key", PASS, f"set in {needs.pinecone_secret_arn.rsplit(':', 1)[-1]}")


def check_staged_weights(client: Any, needs: Needs) -> list[Result]:
    """Each staged prefix holds a model (config.json and weights), readable by the caller."""
    results = []
    for setting, uri in sorted(needs.staged_weights.items()):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        check = f"weights: {setting}"
        fix = f"python model_code/upload_weights.py --for-config s3://{bucket}/<prefix>/ (then deploy with its flags)"
        try:
            names, size = [], 0
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    names.append(item["Key"][len(prefix) :])
                    size += item["Size"]
        except (ClientError, BotoCoreError) as exc:
            results.append(Result(check, FAIL, f"cannot list {uri} ({_error(exc)})", fix))
            continue
        weights = [n for n in names if n.endswith((".safetensors", ".bin"))]
        if "config.json" not in names or not weights:
            results.append(Result(check, FAIL, f"no model under {uri} (config.json and weight files)", fix))
        else:
            results.append(Result(check, PASS, f"{len(weights)} weight files, {size / 1024**3:,.1f} GiB in {uri}"))
    return results


def stack_reservations(cloudformation: Any, client: Any, stack_name: str) -> int:
    """The concurrency the stack's functions reserve now (0 before its first deploy): the
    account's unreserved figure already leaves it out, and an update hands it back first."""
    held = 0
    try:
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        for page in pages:
            for resource in page.get("StackResourceSummaries", []):
                if resource["ResourceType"] == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
                    concurrency = client.get_function_concurrency(FunctionName=resource["PhysicalResourceId"])
                    held += int(concurrency.get("ReservedConcurrentExecutions") or 0)
    except (ClientError, BotoCoreError):  # no such stack (or not allowed to look): nothing held
        return 0
    return held


def check_lambda_concurrency(client: Any, needs: Needs, held: int = 0) -> Result:
    """Lambda lets functions reserve the account's unreserved concurrency less 100: a new
    account (a quota of 10, or 100) can reserve nothing, and is told to set 0."""
    if needs.reserved_concurrency == 0:
        return Result("Lambda concurrency", PASS, "nothing reserved (lambda_reserved_concurrency=0)")
    try:
        limits = client.get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as exc:
        return Result("Lambda concurrency", FAIL, f"cannot read the account settings ({_error(exc)})")
    unreserved = int(limits.get("UnreservedConcurrentExecutions", 0)) + held
    room = unreserved - LAMBDA_UNRESERVED_FLOOR
    if needs.reserved_concurrency > room:
        setting = f"{room} or less" if room > 0 else "0 (reserve nothing)"
        fix = (
            f"-c ragchat:lambda_reserved_concurrency={setting}, or request a higher "
            "'Concurrent executions' quota (Service Quotas -> AWS Lambda)"
        )
        detail = f"reserving {needs.reserved_concurrency} leaves less than {LAMBDA_UNRESERVED_FLOOR} of {unreserved}"
        return Result("Lambda concurrency", FAIL, detail, fix)
    return Result("Lambda concurrency", PASS, f"reserving {needs.reserved_concurrency} of {unreserved} unreserved")


def check_bedrock_model(client: Any, needs: Needs) -> Result:
    """One Converse call of at most one output token, as the identity running preflight: it
    is answered only if the model (or inference profile) is offered in the region and the
    account may call it. A refusal is explained by the chat service's own Bedrock error
    mapping (an unknown id, a model served here only through a profile, a legacy model,
    Marketplace subscription, first-use form, SCP, IAM) with its fix."""
    from ..aws.bedrock_errors import ROLE_HAS_NO_GRANT, map_bedrock_error
    from ..errors import UpstreamThrottled

    model_id, check = needs.bedrock_model_id, f"Bedrock: {needs.bedrock_model_id}"
    messages = [{"role": "user", "content": [{"text": BEDROCK_PROBE}]}]
    try:
        client.converse(modelId=model_id, messages=messages, inferenceConfig={"maxTokens": 1})
    except (ClientError, BotoCoreError) as exc:
        try:
            error = map_bedrock_error(exc, model_id, "preflight")
        except (ClientError, BotoCoreError):  # a failure the mapping does not explain (no credentials)
            fix = "check the credentials and bedrock:InvokeModel for the identity running preflight"
            return Result(check, FAIL, f"cannot call it in {needs.region} ({_error(exc)})", fix)
        detail, _, fix = str(error).partition(" Fix: ")
        if isinstance(error, UpstreamThrottled):  # offered and callable, only busy right now
            return Result(check, WARN, detail, "none needed: the chat service retries a throttled call")
        if ROLE_HAS_NO_GRANT in detail:  # preflight calls as the operator, not as the function
            detail = detail.replace(ROLE_HAS_NO_GRANT, "the identity running preflight may not invoke it")
            fix = "run preflight as an identity allowed bedrock:InvokeModel on it (the stack grants the function)"
        return Result(check, FAIL, detail, fix.rstrip("."))
    return Result(check, PASS, f"offered in {needs.region}, and it answered a 1-token call")


def failed(results: Iterable[Result]) -> bool:
    return any(r.status == FAIL for r in results)


def render(results: list[Result]) -> str:
    """A fixed-width table: check, result, detail; each failure's fix on the line below."""
    width = max(len(r.check) for r in results)
    lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    for r in results:
        lines.append(f"{r.check.ljust(width)}  {r.status.ljust(6)}  {r.detail}")
        if r.fix:
            lines.append(f"{' ' * width}  {' ' * 6}  fix: {r.fix}")
    return "\n".join(lines)
