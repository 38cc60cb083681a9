"""`-c ragchat:parked=true`: every endpoint (and its configuration, model and roles) goes,
the table, the secret, the Lambda and its URL stay, and the Lambda is told it is parked."""

import json

import pytest

from cdk_helpers import cfn_lint_errors, resources, synth, synth_once


@pytest.fixture(scope="module")
def parked():
    return synth_once(parked=True)


def test_parked_has_no_endpoint_but_keeps_the_data_and_the_url(parked, default_template):
    template, _ = parked
    for kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Model",
                 "AWS::ApplicationAutoScaling::ScalableTarget"):  # fmt: skip
        assert resources(template, kind) == {}, kind
    for kind in ("AWS::DynamoDB::Table", "AWS::SecretsManager::Secret", "AWS::Lambda::Function", "AWS::Lambda::Url"):
        assert set(resources(template, kind)) == set(resources(default_template, kind)), "same logical ids: kept"
    assert "sagemaker:" not in json.dumps(resources(template, "AWS::IAM::Policy"))
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert function["Environment"]["Variables"]["RAGCHAT_PARKED"] == "true"
    assert not [o for o in template["Outputs"] if o.endswith("EndpointName")]
    assert {"ChatUrl", "PineconeSecretArn", "ConversationTable"} <= set(template["Outputs"])


def test_parked_is_cdk_nag_and_cfn_lint_clean(parked):
    _, outdir = parked  # synth already raised on any unacknowledged cdk-nag finding
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output


def test_parked_needs_no_quota():
    from stacks.config import DeploymentConfig

    assert DeploymentConfig(parked=True).endpoint_instances() == {}


def test_parked_wikipedia_removes_the_retrieval_endpoint_and_its_image_build():
    template, outdir = synth(parked=True, knowledge_base="wikipedia", wikipedia_s3_uri="s3://my-bucket/wiki/")
    for kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::Model", "AWS::CodeBuild::Project"):
        assert resources(template, kind) == {}, kind
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert function["Environment"]["Variables"]["RAGCHAT_PARKED"] == "true"
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output


def test_wikipedia_needs_the_retrieval_instance_quota_instead_of_minilm():
    from stacks.config import DeploymentConfig

    config = DeploymentConfig(knowledge_base="wikipedia", wikipedia_s3_uri="s3://my-bucket/wiki/")
    assert config.endpoint_instances() == {"ml.g5.12xlarge": 1, "ml.g5.2xlarge": 1, "ml.r5.xlarge": 1}
