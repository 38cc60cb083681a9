"""The exact Bedrock resources the chat function may invoke, for each kind of model id."""

import pytest

from stacks.bedrock import foundation_model_id, invoke_resources, is_inference_profile

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


def test_a_global_profile_also_names_the_region_less_model():
    resources = invoke_resources("global.amazon.nova-2-lite-v1:0", ("us-east-1",), **WHERE)
    assert resources[-1] == "arn:aws:bedrock:::foundation-model/amazon.nova-2-lite-v1:0"


@pytest.mark.parametrize("prefix", ["eu", "apac", "jp", "au", "us-gov"])
def test_every_geography_prefix_is_a_profile(prefix):
    assert is_inference_profile(f"{prefix}.amazon.nova-2-lite-v1:0")


def test_a_profile_without_destination_regions_is_refused():
    with pytest.raises(ValueError, match="destination regions"):
        invoke_resources("eu.amazon.nova-2-lite-v1:0", (), **WHERE)
