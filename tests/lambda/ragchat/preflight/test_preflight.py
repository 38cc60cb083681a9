"""`ragchat preflight` against stand-ins of every API it calls: moto for STS,
CloudFormation (the CDK bootstrap stack) and Secrets Manager, local servers for Service
Quotas (paginated ListServiceQuotas) and Lambda's GetAccountSettings. One account passes,
one fails every check, each failure with its fix."""

from __future__ import annotations

import json

import boto3
import pytest

from ragchat.catalog import chat_model, endpoint_quota_name
from ragchat.cli import main
from ragchat.preflight.checks import Needs, Result, check_quotas, render
from standins.bedrock_runtime import BedrockRuntimeStandIn, ConverseModel
from standins.service_quotas import LambdaAccountStandIn, ServiceQuotasStandIn

DEFAULT_TYPES = {"ml.g5.12xlarge": 1, "ml.g5.2xlarge": 1, "ml.t2.large": 1}
ALL_QUOTAS = {
    f"{t} for endpoint usage": 2.0 for t in ("ml.g5.12xlarge", "ml.g5.2xlarge", "ml.g5.4xlarge", "ml.t2.large")
}
ALL_QUOTAS["ml.p4d.24xlarge for endpoint usage"] = 0.0


@pytest.fixture
def aws(moto_url, monkeypatch):
    """Fake credentials and every client pointed at a stand-in; returns a client factory."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for service in ("STS", "CLOUDFORMATION", "SECRETS_MANAGER", "S3"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_url)

    def client(service: str, region: str):
        return boto3.client(service, region_name=region, endpoint_url=moto_url)

    return client


@pytest.fixture
def account_apis(monkeypatch):
    servers = []

    def start(
        quotas: dict[str, float], unreserved: int, reserved: dict[str, int] | None = None
    ) -> ServiceQuotasStandIn:
        quota_server, lambda_server = ServiceQuotasStandIn(quotas), LambdaAccountStandIn(unreserved, reserved)
        servers.extend((quota_server, lambda_server))
        monkeypatch.setenv("AWS_ENDPOINT_URL_SERVICE_QUOTAS", quota_server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_server.url)
        return quota_server

    yield start
    for server in servers:
        server.close()


def row(out: str, check: str) -> str:
    """`status detail` of one table row, spacing normalised."""
    for line in out.splitlines():
        if line.startswith(check + " "):
            return " ".join(line[len(check) :].split())
    raise AssertionError(f"no row {check!r} in:\n{out}")


def bootstrap(aws, region: str, version: str = "29") -> None:
    template = {
        "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {"BootstrapVersion": {"Value": version}},
    }
    cloudformation = aws("cloudformation", region)
    try:  # the moto server lives for the session: a region bootstrapped by an earlier test stays so
        cloudformation.create_stack(StackName="CDKToolkit", TemplateBody=json.dumps(template))
    except cloudformation.exceptions.AlreadyExistsException:
        (stack,) = cloudformation.describe_stacks(StackName="CDKToolkit")["Stacks"]
        assert stack["Outputs"] == [{"OutputKey": "BootstrapVersion", "OutputValue": version}]


def test_a_ready_account_passes(aws, account_apis, capsys, monkeypatch):
    region = "us-east-2"
    bootstrap(aws, region)
    secret = aws("secretsmanager", region).create_secret(Name="preflight-ok", SecretString="pcsk_never_printed")
    quotas = account_apis(ALL_QUOTAS, unreserved=1000)
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)

    code = main(["preflight", "--region", region, "-c", f"ragchat:pinecone_secret_arn={secret['ARN']}"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out and "Preflight passed." in out
    for instance_type in DEFAULT_TYPES:
        assert row(out, f"quota: {endpoint_quota_name(instance_type)}") == "pass 2 allowed, 1 needed"
    # the chat endpoint's quota is the one its catalog entry names
    assert row(out, f"quota: {chat_model('gpt-neoxt-chat').serving.quota_name}").startswith("pass")
    assert "CDKToolkit CREATE_COMPLETE, version 29" in out
    assert "pcsk_never_printed" not in out, "the key is checked, never shown"
    assert len(quotas.requests) == 3, "all pages of ListServiceQuotas are read"


def test_a_fresh_account_fails_each_check_with_its_fix(aws, account_apis, capsys, monkeypatch):
    region = "eu-west-3"  # no bootstrap stack here
    low = {"ml.g5.12xlarge for endpoint usage": 0.0, "ml.t2.large for endpoint usage": 1.0}  # no g5.2xlarge entry
    account_apis(low, unreserved=100)
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    missing = f"arn:aws:secretsmanager:{region}:123456789012:secret:missing-AbCdEf"

    code = main(["preflight", "--region", region, "-c", f"ragchat:pinecone_secret_arn={missing}"])

    out = capsys.readouterr().out
    assert code == 1, out
    assert row(out, "quota: ml.g5.12xlarge for endpoint usage") == "FAIL 0 allowed, 1 needed"
    assert "--service-code sagemaker --quota-code L-00000000 --desired-value 1" in out
    assert "no such quota: ml.g5.2xlarge is not offered in eu-west-3" in out
    assert row(out, "quota: ml.t2.large for endpoint usage").startswith("pass")
    assert "no CDKToolkit stack in eu-west-3" in out and "npx cdk bootstrap aws://123456789012/eu-west-3" in out
    # a quota of 100 leaves nothing to reserve (Lambda keeps 100 unreserved): the fix is to reserve none
    assert "Lambda concurrency" in out and "ragchat:lambda_reserved_concurrency=0 (reserve nothing)" in out
    assert f"cannot read {missing} (ResourceNotFoundException" in out
    assert "Preflight failed" in out


def test_the_configuration_flags_change_what_is_checked(aws, account_apis, capsys):
    region = "ap-northeast-1"
    bootstrap(aws, region, version="5")
    account_apis(ALL_QUOTAS, unreserved=1000)
    args = [
        "preflight",
        "--region",
        region,
        "-c",
        "ragchat:moderation=comprehend",
        "-c",
        "ragchat:chat_max_instances=3",
    ]

    code = main(args)

    out = capsys.readouterr().out
    assert code == 1
    assert "ml.g5.2xlarge" not in out, "comprehend moderation needs no moderation endpoint"
    assert row(out, "quota: ml.g5.12xlarge for endpoint usage") == "FAIL 2 allowed, 3 needed"
    assert "bootstrap version 5, at least 6 needed" in out


def test_a_region_without_function_urls_fails_the_region_check(aws, account_apis, capsys):
    region = "il-central-1"
    bootstrap(aws, region)
    account_apis(ALL_QUOTAS, unreserved=1000)
    assert main(["preflight", "--region", region]) == 1
    out = capsys.readouterr().out
    assert "region: Function URLs" in out and "not offered in il-central-1" in out
    assert row(out, "region: model containers").startswith("pass")


def test_an_invalid_setting_is_refused_before_any_call(capsys):
    assert main(["preflight", "--region", "us-east-1", "-c", "ragchat:moderation=maybe"]) == 2
    assert "ragchat:moderation" in capsys.readouterr().err


def test_no_credentials_is_one_failure_with_the_fix(no_aws_credentials, capsys):
    assert main(["preflight", "--region", "us-east-1"]) == 1
    out = capsys.readouterr().out
    assert row(out, "AWS credentials").startswith("FAIL") and "aws sso login" in out


def test_quota_check_reports_an_unreadable_quota_list():
    class Denied:
        def get_paginator(self, name):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListServiceQuotas")

    (result,) = check_quotas(Denied(), Needs(region="us-east-1", account="1", endpoint_instances=DEFAULT_TYPES))
    assert result.status == "FAIL" and "AccessDeniedException" in result.detail
    assert "servicequotas:ListServiceQuotas" in render([result, Result("x", "pass", "y")])


def test_staged_weights_are_checked_where_the_configuration_points(aws, account_apis, capsys):
    region = "us-west-1"
    bootstrap(aws, region)
    account_apis(ALL_QUOTAS, unreserved=1000)
    s3 = aws("s3", "us-east-1")
    s3.create_bucket(Bucket="preflight-weights")
    for key, body in {
        "neoxt/config.json": b"{}",
        "neoxt/model-00001.safetensors": b"\0" * 2048,
        "empty/x.txt": b"",
    }.items():
        s3.put_object(Bucket="preflight-weights", Key=key, Body=body)
    args = ["preflight", "--region", region, "-c", "ragchat:chat_model_s3_uri=s3://preflight-weights/neoxt/",
            "-c", "ragchat:moderation_model_s3_uri=s3://preflight-weights/empty/"]  # fmt: skip

    assert main(args) == 1
    out = capsys.readouterr().out
    assert row(out, "weights: chat_model_s3_uri").startswith("pass 1 weight files")
    assert row(out, "weights: moderation_model_s3_uri").startswith("FAIL no model under s3://preflight-weights/empty/")
    assert "upload_weights.py --for-config" in out


BEDROCK_MODEL = "us.amazon.nova-2-lite-v1:0"  # the catalog's default Bedrock model
CALLER = "arn:aws:sts::123456789012:assumed-role/Admin/operator"


@pytest.fixture
def bedrock(monkeypatch):
    """The Bedrock runtime stand-in (Converse, Bedrock's error shapes), where boto3 looks."""
    server = BedrockRuntimeStandIn()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
    yield server
    server.close()


def test_a_bedrock_model_that_answers_passes_without_a_chat_endpoint_quota(aws, account_apis, bedrock, capsys):
    region = "us-east-1"
    bootstrap(aws, region)
    account_apis({"ml.t2.large for endpoint usage": 1.0, "ml.g5.2xlarge for endpoint usage": 1.0}, unreserved=1000)
    bedrock.serve(BEDROCK_MODEL, ConverseModel(reply="OK, ready."))

    code = main(["preflight", "--region", region, "-c", "ragchat:chat_model=bedrock"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "ml.g5.12xlarge" not in out, "no chat endpoint, so no chat instance quota"
    assert row(out, "quota: ml.g5.2xlarge for endpoint usage").startswith("pass"), "moderation still runs one"
    assert row(out, f"Bedrock: {BEDROCK_MODEL}") == f"pass offered in {region}, and it answered a 1-token call"
    (call,) = bedrock.calls(BEDROCK_MODEL)
    assert call.json()["inferenceConfig"] == {"maxTokens": 1}, "the probe costs one output token at most"


REFUSALS = [
    # (error code, Bedrock's message (None: the model is not served here), expected detail, expected fix)
    (None, None, "no such model or inference profile in this region", "aws bedrock list-foundation-models"),
    (
        "AccessDeniedException",
        "Model access is denied due to IAM user or service role is not authorized to perform the required AWS "
        "Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to "
        "this model.",
        "sold through AWS Marketplace",
        "allowed aws-marketplace:Subscribe",
    ),
    (
        "ResourceNotFoundException",
        "Model use case details have not been submitted for this account. Fill out the Anthropic use case details "
        "form before using the model.",
        "first-use form",
        "submit it once in the Bedrock console",
    ),
    (
        "AccessDeniedException",
        f"User: {CALLER} is not authorized to perform: bedrock:InvokeModel on resource: "
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-lite-v1:0 with an explicit deny in a service "
        "control policy: arn:aws:organizations::111122223333:policy/o-abc/service_control_policy/p-def",
        "service control policy denies",
        "organization's administrator",
    ),
    (
        "AccessDeniedException",
        f"User: {CALLER} is not authorized to perform: bedrock:InvokeModel on resource: "
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-2-lite-v1:0 because no "
        "identity-based policy allows the bedrock:InvokeModel action",
        "the identity running preflight may not invoke it",
        "run preflight as an identity allowed bedrock:InvokeModel",
    ),
]


@pytest.mark.parametrize(("code", "message", "detail", "fix"), REFUSALS)
def test_a_bedrock_model_that_is_refused_fails_with_the_mapped_cause_and_fix(
    aws, account_apis, bedrock, capsys, code, message, detail, fix
):
    region = "us-east-2"
    bootstrap(aws, region)
    account_apis(ALL_QUOTAS, unreserved=1000)
    if code is not None:
        bedrock.serve(BEDROCK_MODEL, ConverseModel(reply="OK"))
        bedrock.fail(BEDROCK_MODEL, code, message)

    exit_code = main(["preflight", "--region", region, "-c", "ragchat:chat_model=bedrock"])

    out = capsys.readouterr().out
    assert exit_code == 1, out
    assert row(out, f"Bedrock: {BEDROCK_MODEL}").startswith(f"FAIL Bedrock model {BEDROCK_MODEL}: "), out
    assert detail in out and fix in " ".join(out.split()), out
    assert len(bedrock.calls(BEDROCK_MODEL)) == 1, "one probe, never retried"


def test_a_throttled_bedrock_model_is_a_warning(aws, account_apis, bedrock, capsys):
    region = "us-west-2"
    bootstrap(aws, region)
    account_apis(ALL_QUOTAS, unreserved=1000)
    bedrock.serve(BEDROCK_MODEL, ConverseModel(reply="OK"))
    bedrock.fail(BEDROCK_MODEL, "ThrottlingException", "Too many requests, please wait before trying again.")

    assert main(["preflight", "--region", region, "-c", "ragchat:chat_model=bedrock"]) == 0
    assert row(capsys.readouterr().out, f"Bedrock: {BEDROCK_MODEL}").startswith("warn")
    assert len(bedrock.calls(BEDROCK_MODEL)) == 1, "a probe, not a retry loop"


def test_a_parked_bedrock_deployment_calls_no_model(aws, account_apis, bedrock, capsys):
    region = "us-east-1"
    bootstrap(aws, region)
    account_apis(ALL_QUOTAS, unreserved=1000)
    assert main(["preflight", "--region", region, "-c", "ragchat:chat_model=bedrock", "-c", "ragchat:parked=true"]) == 0
    assert "Bedrock:" not in capsys.readouterr().out and bedrock.requests == []


def deploy_stack(aws, region: str, name: str, functions: dict[str, int]) -> None:
    """A deployed stack holding functions with reserved concurrency, as CloudFormation lists it."""
    role = aws("iam", region).create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    resources = {
        f"Function{index}": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"FunctionName": function, "Role": role, "Runtime": "python3.12", "Handler": "x.h",
                           "Code": {"ZipFile": "def h(event, context): pass"}},
        }
        for index, function in enumerate(functions)
    }  # fmt: skip
    aws("cloudformation", region).create_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources}))


def test_an_update_counts_what_the_deployed_stack_already_reserves(aws, account_apis, capsys):
    """The account's unreserved figure leaves out the stack's own 20: counting them again
    failed a re-run of preflight on the account the stack was deployed to."""
    region = "ca-central-1"
    bootstrap(aws, region)
    deploy_stack(aws, region, "RagChatProd", {"RagChatProd-ChatFunction": 20})
    account_apis(ALL_QUOTAS, unreserved=110, reserved={"RagChatProd-ChatFunction": 20})
    secret = aws("secretsmanager", region).create_secret(Name="prod-key", SecretString="pcsk_x")["ARN"]
    flags = ["-c", f"ragchat:pinecone_secret_arn={secret}"]

    assert main(["preflight", "--region", region, *flags, "-c", "ragchat:stack_name=RagChatProd"]) == 0
    assert row(capsys.readouterr().out, "Lambda concurrency") == "pass reserving 20 of 130 unreserved"
    # another stack name is a second deployment: it needs 20 more than the 10 left
    assert main(["preflight", "--region", region, *flags, "-c", "ragchat:stack_name=RagChatDev"]) == 1
    assert row(capsys.readouterr().out, "Lambda concurrency").startswith(
        "FAIL reserving 20 leaves less than 100 of 110"
    )


def test_reserving_nothing_passes_on_a_new_account(aws, account_apis, capsys):
    region = "eu-north-1"
    bootstrap(aws, region)
    account_apis(ALL_QUOTAS, unreserved=10)
    secret = aws("secretsmanager", region).create_secret(Name="new-account", SecretString="pcsk_x")["ARN"]
    args = ["-c", f"ragchat:pinecone_secret_arn={secret}", "-c", "ragchat:lambda_reserved_concurrency=0"]
    main(["preflight", "--region", region, *args])
    assert row(capsys.readouterr().out, "Lambda concurrency") == "pass nothing reserved (lambda_reserved_concurrency=0)"
