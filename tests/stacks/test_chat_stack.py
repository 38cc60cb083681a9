"""Template assertions for every resource, least privilege, retention, and no secrets."""

import json
import re

import pytest

from cdk_helpers import ROOT, cfn_lint_errors, resources, synth
from ragchat.catalog import chat_model


def test_chat_endpoint_runs_lmi_on_g5_12xlarge_with_timeouts_sized_for_the_model(default_template):
    configs = resources(default_template, "AWS::SageMaker::EndpointConfig")
    variants = [c["ProductionVariants"][0] for c in configs.values()]
    chat = next(v for v in variants if v["InstanceType"] == "ml.g5.12xlarge")
    # twice the model's start estimate (its catalog entry's start_seconds), not the 3,600 s maximum
    assert chat["ContainerStartupHealthCheckTimeoutInSeconds"] == 1200
    assert chat["ModelDataDownloadTimeoutInSeconds"] == 1200 and chat["InitialInstanceCount"] == 1
    moderation = next(v for v in variants if v["InstanceType"] == "ml.g5.2xlarge")
    assert moderation["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert sorted(v["InstanceType"] for v in variants) == ["ml.g5.12xlarge", "ml.g5.2xlarge", "ml.t2.large"]
    images = json.dumps(resources(default_template, "AWS::SageMaker::Model"))
    assert "djl-inference:0.31.0-lmi13.0.0-cu124" in images
    assert "huggingface-pytorch-inference:2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04" in images


def test_lmi_configuration_is_tensor_parallel_4_fp16():
    props = (ROOT / "model_code" / "chat_llm" / "serving.properties").read_text()
    assert "option.tensor_parallel_degree=4" in props and "option.dtype=fp16" in props
    assert "option.model_id=togethercomputer/GPT-NeoXT-Chat-Base-20B" in props


def test_image_account_comes_from_the_vendored_region_mapping(default_template):
    from stacks.region_facts import DLC_ACCOUNTS

    mapping = default_template["Mappings"]["DlcAccounts"]
    assert {region: entry["account"] for region, entry in mapping.items()} == DLC_ACCOUNTS
    assert "DlcRepositoryAccountMap" not in default_template["Mappings"], "CDK's incomplete facts are not used"


def test_endpoints_have_no_fixed_names_and_scale_between_min_and_max(default_template):
    own_name = {
        "AWS::SageMaker::Endpoint": "EndpointName",
        "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
        "AWS::SageMaker::Model": "ModelName",
    }
    for kind, name in own_name.items():
        for props in resources(default_template, kind).values():
            assert name not in props
    # min = max: nothing to scale, so no variant is registered (a registered variant's
    # instance type cannot be changed by UpdateEndpoint) and no scaling role exists
    assert resources(default_template, "AWS::ApplicationAutoScaling::ScalableTarget") == {}
    assert resources(default_template, "AWS::ApplicationAutoScaling::ScalingPolicy") == {}
    roles = resources(default_template, "AWS::IAM::Role").values()
    assert not [r for r in roles if "application-autoscaling" in json.dumps(r["AssumeRolePolicyDocument"])]


def test_target_tracking_when_max_above_min():
    template, _ = synth(chat_max_instances=3)
    # an update keeps the instance count scaling reached (UpdateEndpoint's default drops it to the minimum)
    retained = [
        n for n, e in resources(template, "AWS::SageMaker::Endpoint").items() if e.get("RetainAllVariantProperties")
    ]
    assert len(retained) == 1 and retained[0].startswith("ChatLlm")  # only the scaled variant
    (target,) = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3) and "RoleARN" not in target
    assert "ChatLlm" in json.dumps(target["ResourceId"])
    (policy,) = resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    spec = policy["TargetTrackingScalingPolicyConfiguration"]
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def test_function_url_is_iam_and_streaming(default_template):
    (url,) = resources(default_template, "AWS::Lambda::Url").values()
    assert url["AuthType"] == "AWS_IAM" and url["InvokeMode"] == "RESPONSE_STREAM"
    (function,) = resources(default_template, "AWS::Lambda::Function").values()
    assert function["TracingConfig"] == {"Mode": "Active"} and function["Timeout"] == 300
    assert function["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "response_stream"
    (logs,) = resources(default_template, "AWS::Logs::LogGroup").values()
    assert logs["RetentionInDays"] == 30


def test_public_url_needs_explicit_acknowledgement():
    template, _ = synth(function_url_auth="NONE", allow_public_function_url=True)
    assert next(iter(resources(template, "AWS::Lambda::Url").values()))["AuthType"] == "NONE"


def test_table_keys_ttl_pitr_encryption(default_template):
    (table,) = resources(default_template, "AWS::DynamoDB::Table").values()
    assert table["KeySchema"] == [
        {"AttributeName": "conversation", "KeyType": "HASH"},
        {"AttributeName": "turn", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize(("retain", "policy"), [(False, "Delete"), (True, "Retain")])
def test_stateful_resources_follow_the_retention_setting(retain, policy):
    template, _ = synth(retain_data=retain)
    for kind in ("AWS::DynamoDB::Table", "AWS::SecretsManager::Secret"):
        for item in resources(template, kind).values():
            assert item["_raw"]["DeletionPolicy"] == policy and item["_raw"]["UpdateReplacePolicy"] == policy
    # What bills by the hour is always removed.
    for kind in (
        "AWS::SageMaker::Endpoint",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Model",
        "AWS::Logs::LogGroup",
    ):
        for item in resources(template, kind).values():
            assert item["_raw"].get("DeletionPolicy", "Delete") == "Delete"


def statements(template):
    for policy in resources(template, "AWS::IAM::Policy").values():
        yield from policy["PolicyDocument"]["Statement"]


ACKNOWLEDGED_STAR_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "comprehend:DetectToxicContent",
}


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"moderation": "comprehend"},
        {"chat_model_s3_uri": "s3://my-bucket/neoxt", "moderation_model_s3_uri": "s3://my-bucket/gpt-jt"},
        {"chat_model": "llama-2-chat", "accept_llama2_eula": True},
    ],
)
def test_least_privilege(settings):
    template, _ = synth(**settings)
    for statement in statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not {"sagemaker:*", "dynamodb:*", "s3:*", "*"} & set(actions)
        if statement["Resource"] == "*":
            assert set(actions) <= ACKNOWLEDGED_STAR_ACTIONS, actions
    invoke = next(s for s in statements(template) if "sagemaker:InvokeEndpoint" in s["Action"])
    expected = 2 if settings.get("moderation") == "comprehend" else 3
    assert len(invoke["Resource"]) == expected and all("Ref" in r for r in invoke["Resource"])
    assert "AmazonSageMakerFullAccess" not in json.dumps(template)


def test_weights_from_s3_are_readable_only_under_their_prefix():
    template, _ = synth(chat_model_s3_uri="s3://my-bucket/neoxt", moderation_model_s3_uri="s3://other/gpt-jt/")
    reads = [s for s in statements(template) if s["Action"] == "s3:GetObject"]
    assert any(json.dumps(s["Resource"]).endswith('s3:::my-bucket/neoxt/*"]]}') for s in reads)
    assert any(json.dumps(s["Resource"]).endswith('s3:::other/gpt-jt/*"]]}') for s in reads)
    lists = [s for s in statements(template) if s["Action"] == "s3:ListBucket"]
    assert sorted(s["Condition"]["StringLike"]["s3:prefix"] for s in lists) == [["gpt-jt/*"], ["neoxt/*"]]


def test_comprehend_mode_has_no_moderation_endpoint():
    template, _ = synth(moderation="comprehend")
    assert len(resources(template, "AWS::SageMaker::Endpoint")) == 2
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert function["Environment"]["Variables"]["RAGCHAT_MODERATION"] == "comprehend"


def test_secret_is_generated_or_imported_never_in_template(default_template):
    (secret,) = resources(default_template, "AWS::SecretsManager::Secret").values()
    assert "SecretString" not in secret and "GenerateSecretString" in secret
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pinecone-AbCdEf"
    template, _ = synth(pinecone_secret_arn=arn)
    assert resources(template, "AWS::SecretsManager::Secret") == {}
    assert arn in json.dumps(template)


def test_outputs(default_template):
    assert set(default_template["Outputs"]) == {
        "ChatUrl",
        "ConversationTable",
        "PineconeSecretArn",
        "ChatEndpointName",
        "EmbeddingEndpointName",
        "ModerationEndpointName",
        "SetPineconeKeyCommand",
        "AlarmTopicArn",
        "DashboardName",
    }


def test_no_secret_value_anywhere_in_the_cloud_assembly(monkeypatch):
    fake_key = "pcsk_TESTKEY_do_not_leak_123"
    monkeypatch.setenv("PINECONE_API_KEY", fake_key)
    _, outdir = synth()
    for path in outdir.rglob("*"):
        if path.is_file():
            assert fake_key not in path.read_text(errors="ignore"), path


def test_cfn_lint_has_no_errors():
    _, outdir = synth(chat_max_instances=2, moderation="endpoint")
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output


def test_embedding_endpoint_serves_packed_weights_in_network_isolation(default_template):
    models = resources(default_template, "AWS::SageMaker::Model")
    embedding = next(m for m in models.values() if "huggingface-pytorch-inference" in json.dumps(m))
    assert embedding["EnableNetworkIsolation"] is True
    assert "HF_MODEL_ID" not in embedding["PrimaryContainer"]["Environment"], "no hub download at startup"
    assert "ModelDataUrl" in embedding["PrimaryContainer"]
    others = [m for m in models.values() if m is not embedding]
    assert all("EnableNetworkIsolation" not in m for m in others), "hub mode: the LLMs download from the hub"


def model_data_urls(template: dict) -> list[str]:
    models = resources(template, "AWS::SageMaker::Model").values()
    return sorted(json.dumps(m["PrimaryContainer"]["ModelDataUrl"]) for m in models)


def test_a_model_archive_is_a_new_asset_when_its_overrides_or_pinned_weights_change(monkeypatch, default_template):
    """An unchanged asset hash would let a stale archive (in cdk.out, or already in the
    bootstrap bucket) be served: the weights' S3 location or version would be ignored."""
    import dataclasses

    from stacks import chat_stack

    hub = model_data_urls(default_template)
    pinned = model_data_urls(synth(chat_model_revision="0123456789abcdef0123456789abcdef01234567")[0])
    assert len(set(hub) - set(pinned)) == 1, "only the chat configuration changes"

    class NewPin(type(chat_stack.MINILM_WEIGHTS)):
        pinned_version = "0.2.0"

    monkeypatch.setattr(chat_stack, "MINILM_WEIGHTS", NewPin(**dataclasses.asdict(chat_stack.MINILM_WEIGHTS)))
    repinned = model_data_urls(synth()[0])
    assert len(set(hub) - set(repinned)) == 1, "only the embedding archive changes"


def test_the_container_fallback_builds_the_same_archive_as_local_bundling(tmp_path):
    """The Docker command, run here by sh with the container's folders mapped to temporary
    ones, writes the archive local bundling writes (the S3 override applied)."""
    import subprocess
    import tarfile

    from stacks.bundling import ModelArchiveBundling
    from stacks.chat_stack import MODEL_CODE

    bundling = ModelArchiveBundling(MODEL_CODE / "chat_llm", {"option.model_id": "s3://my-bucket/neoxt/"})
    (tmp_path / "local").mkdir()
    (tmp_path / "docker").mkdir()
    (tmp_path / "work").mkdir()  # the container's /tmp
    assert bundling.try_bundle(str(tmp_path / "local"), None)
    command = bundling.docker_command(str(MODEL_CODE / "chat_llm"), str(tmp_path / "docker"), str(tmp_path / "work"))
    subprocess.run(["sh", "-c", command], check=True)

    def contents(folder):
        with tarfile.open(folder / "model.tar.gz") as archive:
            return {m.name.removeprefix("./"): archive.extractfile(m).read() for m in archive if m.isfile()}

    local, docker = contents(tmp_path / "local"), contents(tmp_path / "docker")
    assert local == docker
    assert b"option.model_id=s3://my-bucket/neoxt/\n" in docker["serving.properties"]


# -- the chat model options: each deploys what the Lambda's contract for it speaks -------


def llama_template(**settings) -> dict:
    return synth(chat_model="llama-2-chat", accept_llama2_eula=True, **settings)[0]


def chat_endpoint(template: dict) -> tuple[dict, dict]:
    """The chat endpoint's production variant and the AWS::SageMaker::Model it serves."""
    (config,) = [c for c in resources(template, "AWS::SageMaker::EndpointConfig") if c.startswith("ChatLlm")]
    (variant,) = template["Resources"][config]["Properties"]["ProductionVariants"]
    return variant, template["Resources"][variant["ModelName"]["Fn::GetAtt"][0]]["Properties"]


def test_llama_2_chat_is_jumpstarts_model_package_with_network_isolation_and_no_image_grants():
    template = llama_template()
    variant, model = chat_endpoint(template)
    assert variant["InstanceType"] == "ml.g5.4xlarge"
    assert model["EnableNetworkIsolation"] is True
    assert set(model["PrimaryContainer"]) == {"ModelPackageName"}, "image, weights and settings come with the package"
    arn = json.dumps(model["PrimaryContainer"]["ModelPackageName"])
    assert ':sagemaker:", {"Ref": "AWS::Region"}, ":", {"Fn::FindInMap":' in arn
    assert arn.endswith(':model-package/llama2-7b-f-v4-71eeccf76ddf33f2a18d2e16b9c7f302"]]}')
    role = model["ExecutionRoleArn"]["Fn::GetAtt"][0]
    (policy,) = [p for p in resources(template, "AWS::IAM::Policy").values() if p["Roles"] == [{"Ref": role}]]
    actions = json.dumps([s["Action"] for s in policy["PolicyDocument"]["Statement"]])
    assert '"ecr:' not in actions and '"s3:' not in actions, "SageMaker pulls the package's image and weights itself"


def evaluate_rule(condition, region: str) -> bool:
    """CloudFormation's rule functions used by the template, with AWS::Region bound."""
    ((function, args),) = condition.items()
    if function == "Fn::Or":
        return any(evaluate_rule(c, region) for c in args)
    if function == "Fn::Equals":
        left, right = (region if a == {"Ref": "AWS::Region"} else a for a in args)
        return left == right
    raise AssertionError(f"unexpected rule function {function}")


def test_llama_2_chat_deploys_only_where_the_package_is_published(default_template):
    package = chat_model("llama-2-chat").serving.model_package
    template = llama_template()
    (mapping,) = [m for name, m in template["Mappings"].items() if name.startswith("ChatModelPackageAccounts")]
    assert {r: v["account"] for r, v in mapping.items()} == dict(package.accounts)
    (rule,) = [r for name, r in template["Rules"].items() if name.startswith("ChatModelPackageRegion")]
    (assertion,) = rule["Assertions"]
    for region in package.accounts:
        assert evaluate_rule(assertion["Assert"], region), region
    for region in ("eu-central-1", "ap-northeast-1", "us-gov-west-1"):
        assert not evaluate_rule(assertion["Assert"], region), region
    assert "us-east-1" in assertion["AssertDescription"] and "ragchat:chat_model" in assertion["AssertDescription"]
    assert not [name for name in default_template["Rules"] if name.startswith("ChatModelPackage")], (
        "other models: no rule"
    )


def test_llama_2_chat_in_a_known_region_without_the_package_fails_synth_naming_the_setting():
    import aws_cdk as cdk

    from stacks.chat_stack import RagChatStack
    from stacks.config import ConfigError, DeploymentConfig

    config = DeploymentConfig(chat_model="llama-2-chat", accept_llama2_eula=True)
    no_bundling = {"aws:cdk:bundling-stacks": []}  # as cdk_helpers.synth: no pip, no archives
    with pytest.raises(ConfigError, match=r"ragchat:chat_model: .*published in ap-southeast-1.*eu-central-1"):
        RagChatStack(cdk.App(context=no_bundling), "RagChat", config=config, env=cdk.Environment(region="eu-central-1"))
    stack = RagChatStack(
        cdk.App(context=no_bundling), "RagChat", config=config, env=cdk.Environment(region="eu-west-1")
    )
    assert stack.region == "eu-west-1"


def test_a_named_model_package_replaces_the_regional_lookup():
    arn = "arn:aws:sagemaker:eu-central-1:123456789012:model-package/llama2-7b-f-v5-0123"
    template = llama_template(chat_model_package_arn=arn)
    assert chat_endpoint(template)[1]["PrimaryContainer"] == {"ModelPackageName": arn}
    assert not [name for name in template["Rules"] if name.startswith("ChatModelPackage")]
    assert not [name for name in template["Mappings"] if name.startswith("ChatModelPackage")]


def test_the_cfn_lint_check_finds_errors_when_there_are_some(tmp_path, default_template):
    broken = json.loads(json.dumps(default_template))
    config = next(k for k, v in broken["Resources"].items() if v["Type"] == "AWS::SageMaker::EndpointConfig")
    broken["Resources"][config]["Properties"]["ProductionVariants"][0]["InitialInstanceCount"] = "many"
    broken["Resources"]["Orphan"] = {"Type": "AWS::SageMaker::Endpoint", "Properties": {}}
    (tmp_path / "broken.template.json").write_text(json.dumps(broken))
    errors, _ = cfn_lint_errors([tmp_path / "broken.template.json"])
    assert {m.rule.id for m in errors} >= {"E3012", "E3003"}, errors


def test_each_model_is_created_after_its_roles_grants(default_template):
    """CreateModel checks that the execution role can pull the image: its policy must exist first."""
    for model in resources(default_template, "AWS::SageMaker::Model").values():
        role = model["ExecutionRoleArn"]["Fn::GetAtt"][0]
        (policy,) = [
            k for k, p in resources(default_template, "AWS::IAM::Policy").items() if p["Roles"] == [{"Ref": role}]
        ]
        assert model["_raw"]["DependsOn"] == [policy]


def test_the_table_grant_is_exactly_the_calls_the_store_makes(default_template):
    """DynamoDbConversationStore queries a session and writes a turn with TransactWriteItems
    of conditional Puts, which IAM authorizes as PutItem on the table."""
    import inspect

    from ragchat.aws import dynamodb_store

    table_statements = [s for s in statements(default_template) if any(a.startswith("dynamodb:") for a in s["Action"])]
    (grant,) = table_statements
    assert sorted(grant["Action"]) == ["dynamodb:PutItem", "dynamodb:Query"]
    assert all("Conversations" in json.dumps(r) for r in grant["Resource"])
    calls = set(re.findall(r"self\.client\.(\w+)\(", inspect.getsource(dynamodb_store)))
    assert calls == {"query", "transact_write_items"}, "a new call needs its action in the grant"
    assert '"Put"' in inspect.getsource(dynamodb_store) and "ConditionCheck" not in inspect.getsource(dynamodb_store)


def test_comprehend_grant_is_held_to_the_stacks_region():
    template, _ = synth(moderation="comprehend")
    (statement,) = [s for s in statements(template) if s["Action"] == "comprehend:DetectToxicContent"]
    assert statement["Resource"] == "*"  # the action has no resource-level permissions
    assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": {"Ref": "AWS::Region"}}}


def test_reserved_concurrency_is_set_and_configurable(default_template):
    (function,) = resources(default_template, "AWS::Lambda::Function").values()
    assert function["ReservedConcurrentExecutions"] == 20
    template, _ = synth(lambda_reserved_concurrency=3)
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert function["ReservedConcurrentExecutions"] == 3


def test_zero_reserves_nothing_for_accounts_that_cannot(tmp_path):
    """Lambda keeps 100 of the account's concurrency unreserved, so a new account (a quota of
    10 or 100) cannot reserve even 1: 0 leaves the property out (0 in the template would stop
    the function), and checkov is told why its reserved-concurrency check is skipped."""
    template, _ = synth(lambda_reserved_concurrency=0)
    ((name, function),) = [(n, r) for n, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    (skip,) = function["Metadata"]["checkov"]["skip"]
    assert skip["id"] == "CKV_AWS_115" and "lambda_reserved_concurrency=0" in skip["comment"]


def test_two_stacks_in_one_account_keep_their_metrics_and_alarms_apart():
    """Two deployments (dev and prod) in one account and region: the service metrics and the
    alarms on them carry each stack's own name as their `service` dimension."""
    dimension_of = {}
    for name in ("RagChatDev", "RagChatProd"):
        template, _ = synth(stack_name=name)
        (function,) = resources(template, "AWS::Lambda::Function").values()
        assert function["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == name
        alarms = [a for a in resources(template, "AWS::CloudWatch::Alarm").values() if a.get("Namespace") == "RagChat"]
        assert alarms and {json.dumps(a["Dimensions"]) for a in alarms} == {
            json.dumps([{"Name": "service", "Value": name}])
        }
        dimension_of[name] = alarms[0]["Dimensions"]
    assert dimension_of["RagChatDev"] != dimension_of["RagChatProd"]
