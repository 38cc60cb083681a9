"""The vendored region facts, cross-checked against CDK's and against each other, and the
refusal of a region that lacks Function URLs or the model containers: at synth when the
region is known, by a template rule (with a message that says why) when it is not."""

import aws_cdk as cdk
import pytest
from aws_cdk.region_info import RegionInfo

from cdk_helpers import synth
from stacks.chat_stack import RagChatStack
from stacks.config import DeploymentConfig
from stacks.region_facts import DLC_ACCOUNTS, NO_FUNCTION_URLS
from stacks.regions import UnsupportedRegion

CDK_COMMERCIAL = {r.name: r.dlc_repository_account for r in RegionInfo.regions if r.partition == "aws"}
NO_BUNDLING = {"aws:cdk:bundling-stacks": []}


def test_the_map_covers_every_commercial_region_and_agrees_with_cdk_where_cdk_knows():
    assert set(DLC_ACCOUNTS) == set(CDK_COMMERCIAL)
    known = {region: account for region, account in CDK_COMMERCIAL.items() if account}
    assert {region: DLC_ACCOUNTS[region] for region in known} == known
    # the regions the issue found missing from CDK 2.275's facts are covered here
    missing_in_cdk = {r for r, account in CDK_COMMERCIAL.items() if not account}
    assert missing_in_cdk >= {"af-south-1", "ap-northeast-3", "il-central-1", "ca-west-1", "mx-central-1"}
    assert all(DLC_ACCOUNTS[r].isdigit() and len(DLC_ACCOUNTS[r]) == 12 for r in missing_in_cdk)


def test_regions_without_function_urls_are_commercial_regions_sagemaker_serves():
    assert len(NO_FUNCTION_URLS) == len(set(NO_FUNCTION_URLS)) == 11
    assert set(NO_FUNCTION_URLS) <= set(DLC_ACCOUNTS)
    assert "us-east-1" not in NO_FUNCTION_URLS


def evaluate(condition, region: str) -> bool:
    """The rule functions the template uses, with AWS::Region bound."""
    ((function, args),) = condition.items()
    if function == "Fn::Not":
        return not evaluate(args[0], region)
    if function == "Fn::Contains":
        values, value = args
        return (region if value == {"Ref": "AWS::Region"} else value) in values
    raise AssertionError(f"unexpected rule function {function}")


def test_an_env_agnostic_template_refuses_such_regions_by_rule(default_template):
    rules = default_template["Rules"]
    (url_rule,) = rules["FunctionUrlRegion"]["Assertions"]
    (dlc_rule,) = rules["DlcRegion"]["Assertions"]
    assert not evaluate(url_rule["Assert"], "il-central-1") and evaluate(url_rule["Assert"], "af-south-1")
    assert "Function URLs are not offered" in url_rule["AssertDescription"]
    assert evaluate(dlc_rule["Assert"], "mx-central-1") and not evaluate(dlc_rule["Assert"], "cn-north-1")
    assert "Deep Learning Containers" in dlc_rule["AssertDescription"]


def stack_in(region: str, **settings) -> RagChatStack:
    config = DeploymentConfig(**settings)
    return RagChatStack(cdk.App(context=NO_BUNDLING), "RagChat", config=config, env=cdk.Environment(region=region))


@pytest.mark.parametrize("region", ["il-central-1", "ap-southeast-7", "eu-central-2"])
def test_a_known_region_without_function_urls_fails_synth(region):
    with pytest.raises(UnsupportedRegion, match=f"Function URLs are not offered in {region}"):
        stack_in(region)


def test_a_known_region_outside_the_map_fails_synth_naming_the_containers():
    with pytest.raises(UnsupportedRegion, match="Deep Learning Containers are not published in xx-south-9"):
        stack_in("xx-south-9")


def test_a_known_region_cdk_lacks_gets_its_account_from_the_map():
    template = cdk.assertions.Template.from_stack(stack_in("af-south-1")).to_json()
    images = [m["Properties"]["PrimaryContainer"]["Image"] for m in template["Resources"].values()
              if m["Type"] == "AWS::SageMaker::Model"]  # fmt: skip
    assert images and all(i["Fn::Join"][1][0] == "626614931356.dkr.ecr.af-south-1." for i in images), images
    assert "DlcAccounts" not in template.get("Mappings", {}) and "FunctionUrlRegion" not in template.get("Rules", {})


def test_the_web_adapter_layer_is_the_latest_published_version(default_template):
    (function,) = [r for r in default_template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    (layer,) = function["Properties"]["Layers"]
    assert "layer:LambdaAdapterLayerX86:26" in str(layer)


def test_synth_with_cdk_helpers_still_builds_an_env_agnostic_template():
    template, _ = synth(moderation="comprehend")
    assert "DlcAccounts" in template["Mappings"]
