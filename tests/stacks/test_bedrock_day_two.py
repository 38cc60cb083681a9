"""chat_model=bedrock with the day-two options: there is no chat endpoint to scale to zero,
park or count quota for, while the moderation and embedding endpoints still are."""

from __future__ import annotations

import json

import pytest

from cdk_helpers import cfn_lint_errors, resources, synth
from ragchat.aws.settings import AwsSettings
from stacks.chat_stack import MODERATION_START_SECONDS
from stacks.config import DeploymentConfig

PLACEHOLDER = "<resolved at deploy>"


def lint_clean(outdir) -> None:
    """cdk-nag already raised in synth on any unacknowledged finding; cfn-lint here."""
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output


def environment(template: dict) -> dict:
    (function,) = resources(template, "AWS::Lambda::Function").values()
    return function["Environment"]["Variables"]


def statements(template: dict) -> str:
    return json.dumps([p["PolicyDocument"]["Statement"] for p in resources(template, "AWS::IAM::Policy").values()])


def test_scale_to_zero_scales_only_the_moderation_model_and_quotes_its_start():
    template, outdir = synth(chat_model="bedrock", scale_to_zero=True)
    (component,) = resources(template, "AWS::SageMaker::InferenceComponent")
    assert component.startswith("ModerationLlm")
    assert not [k for k in template["Resources"] if k.startswith("ChatLlm")]
    env = environment(template)
    assert "RAGCHAT_CHAT_INFERENCE_COMPONENT" not in env and "RAGCHAT_CHAT_ENDPOINT" not in env
    # what a request that finds moderation scaled to zero is told: its start, not a chat endpoint's
    assert env["RAGCHAT_MODEL_START_SECONDS"] == str(MODERATION_START_SECONDS)
    loaded = AwsSettings.from_env({k: v if isinstance(v, str) else PLACEHOLDER for k, v in env.items()})
    assert loaded.generator == "bedrock" and loaded.model_start_seconds == MODERATION_START_SECONDS
    assert "bedrock:InvokeModel" in statements(template)
    lint_clean(outdir)


def test_scale_to_zero_without_a_gpu_endpoint_has_nothing_to_scale():
    template, outdir = synth(chat_model="bedrock", moderation="comprehend", scale_to_zero=True)
    assert resources(template, "AWS::SageMaker::InferenceComponent") == {}
    assert resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy") == {}
    (endpoint,) = resources(template, "AWS::SageMaker::Endpoint")
    assert endpoint.startswith("Embedding"), "the embedding endpoint stays a classic endpoint"
    lint_clean(outdir)


def test_parked_bedrock_has_no_endpoint_and_calls_no_model():
    template, outdir = synth(chat_model="bedrock", parked=True)
    for kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::Model", "AWS::SageMaker::InferenceComponent"):
        assert resources(template, kind) == {}, kind
    assert environment(template)["RAGCHAT_PARKED"] == "true"
    policies = statements(template)
    assert "sagemaker:" not in policies and "bedrock:" not in policies
    lint_clean(outdir)


@pytest.mark.parametrize(
    ("settings", "instances"),
    [
        ({}, {"ml.g5.2xlarge": 1, "ml.t2.large": 1}),  # the moderation and embedding endpoints only
        ({"moderation": "comprehend", "chat_max_instances": 3}, {"ml.t2.large": 1}),
        ({"parked": True}, {}),
    ],
)
def test_bedrock_needs_no_chat_instance_quota(settings, instances):
    config = DeploymentConfig(chat_model="bedrock", **settings)
    assert config.resolved_chat_instance_type == ""
    assert config.endpoint_instances() == instances
