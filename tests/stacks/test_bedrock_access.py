"""The exact Bedrock resources the chat function may invoke, for each kind of model id,
and the stack that grants them."""

import json

import aws_cdk as cdk
import pytest

from cdk_helpers import resources, synth, synth_once
from stacks.bedrock import foundation_model_id, invoke_resources, is_inference_profile
from stacks.chat_stack import RagChatStack
from stacks.config import ConfigError, DeploymentConfig

WHERE = {"partition": "aws", "region": "us-east-2", "account": "123456789012"}


def test_a_foundation_model_is_invoked_in_the_stacks_region_only():
    assert not is_inference_profile("amazon.nova-2-lite-v1:0")
    assert invoke_resources("amazon.nova-2-lite-v1:0", (), **WHERE) == [
        "arn:aws:bedrock:us-east-2::foundation-model/amazon.nova-2-lite-v1:0"
    ]


def test_a_geographic_profile_names_itself_and_the_model_in_every_destination_region():
    model_id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert is_inference_profile(model_id)
    assert foundation_model_id(model_id) == "anthropic.claude-haiku-4-5-20251001-v1:0"
    assert invoke_resources(model_id, ("us-east-1", "us-east-2", "us-west-2"), **WHERE) == [
        "arn:aws:bedrock:us-east-2:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:us-east-2::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
    ]


def test_a_global_profile_names_the_model_in_the_source_region_and_region_less():
    assert invoke_resources("global.amazon.nova-2-lite-v1:0", (), **WHERE) == [
        "arn:aws:bedrock:us-east-2:123456789012:inference-profile/global.amazon.nova-2-lite-v1:0",
        "arn:aws:bedrock:us-east-2::foundation-model/amazon.nova-2-lite-v1:0",
        "arn:aws:bedrock:::foundation-model/amazon.nova-2-lite-v1:0",
    ]


@pytest.mark.parametrize("prefix", ["eu", "apac", "jp", "au", "us-gov"])
def test_every_geography_prefix_is_a_profile(prefix):
    assert is_inference_profile(f"{prefix}.amazon.nova-2-lite-v1:0")


def test_a_profile_without_destination_regions_is_refused():
    with pytest.raises(ValueError, match="destination regions"):
        invoke_resources("eu.amazon.nova-2-lite-v1:0", (), **WHERE)


# -- in the synthesized stack -----------------------------------------------------------------
def bedrock_statement(template: dict) -> dict:
    (statement,) = [
        s
        for policy in resources(template, "AWS::IAM::Policy").values()
        for s in policy["PolicyDocument"]["Statement"]
        if "bedrock:InvokeModel" in s["Action"]
    ]
    return statement


def test_a_global_profile_synthesizes_without_a_region_rule_or_a_chat_endpoint():
    template, _ = synth(chat_model="bedrock", bedrock_model_id="global.amazon.nova-2-lite-v1:0", moderation="off")
    assert list(resources(template, "AWS::SageMaker::Endpoint")) == ["EmbeddingEndpoint0EDDDDCD"]
    grant = json.dumps(bedrock_statement(template)["Resource"])
    assert ":inference-profile/global.amazon.nova-2-lite-v1:0" in grant
    assert ':bedrock:::foundation-model/amazon.nova-2-lite-v1:0"' in grant
    assert "*" not in grant
    assert "BedrockProfileRegion" not in template.get("Rules", {})
    assert template["Outputs"]["BedrockModelId"]["Value"] == "global.amazon.nova-2-lite-v1:0"


def test_a_geographic_profile_is_refused_outside_its_regions():
    template, _ = synth_once(chat_model="bedrock")
    rule = template["Rules"]["BedrockProfileRegion"]["Assertions"][0]
    allowed = [c["Fn::Equals"][1] for c in rule["Assert"]["Fn::Or"]]
    assert allowed == ["us-east-1", "us-east-2", "us-west-2"]
    assert "ragchat:bedrock_model_id" in rule["AssertDescription"]

    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    with pytest.raises(ConfigError, match="us.amazon.nova-2-lite-v1:0 is served from us-east-1, us-east-2, us-west-2"):
        RagChatStack(
            app,
            "RagChat",
            config=DeploymentConfig(chat_model="bedrock"),
            env=cdk.Environment(account="123456789012", region="eu-west-1"),
        )
