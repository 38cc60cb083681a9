"""The exact resources the chat function may invoke on Amazon Bedrock.

A foundation model id (`amazon.nova-2-lite-v1:0`) is invoked in the stack's region: one
foundation-model ARN. A cross-region inference profile id (`us.`, `eu.`, `apac.`, ...,
`global.` + the model id) is invoked through the profile in the stack's region, and
Bedrock authorizes the call again on the foundation model in the destination region it
routes to: the grant names the profile and the model in every destination region (a
global profile also routes to the region-less model ARN). Which regions a profile routes
to cannot be looked up offline, so the catalog stores them."""

from __future__ import annotations

import re

from aws_cdk import CfnRule, CfnRuleAssertion, Fn, Stack, Token
from constructs import Construct

from .config import ConfigError

# Geography prefixes of Bedrock's system-defined (cross-region) inference profiles.
PROFILE_ID = re.compile(r"^(?P<geo>us|us-gov|eu|apac|jp|au|ca|global)\.(?P<model>[a-z0-9-]+\.[a-z0-9.:-]+)$")
MODEL_ID = re.compile(r"^[a-z0-9-]{1,63}\.[a-z0-9.:-]{1,128}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


def is_inference_profile(model_id: str) -> bool:
    return bool(PROFILE_ID.match(model_id))


def foundation_model_id(model_id: str) -> str:
    """The model a profile id routes to (the id itself when it is not a profile)."""
    match = PROFILE_ID.match(model_id)
    return match["model"] if match else model_id


def invoke_resources(
    model_id: str, destination_regions: tuple[str, ...], *, partition: str, region: str, account: str
) -> list[str]:
    """The ARNs `bedrock:InvokeModel` / `InvokeModelWithResponseStream` must name."""
    match = PROFILE_ID.match(model_id)
    if not match:
        return [f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"]
    model = match["model"]
    profile = f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"
    if match["geo"] == "global":
        return [
            profile,
            f"arn:{partition}:bedrock:{region}::foundation-model/{model}",
            f"arn:{partition}:bedrock:::foundation-model/{model}",
        ]
    if not destination_regions:
        raise ValueError(f"inference profile {model_id} needs its destination regions")
    return [profile] + [f"arn:{partition}:bedrock:{r}::foundation-model/{model}" for r in destination_regions]


def require_source_region(scope: Construct, model_id: str, destination_regions: tuple[str, ...]) -> None:
    """A geographic profile (`us.`, `eu.`, ...) is invoked from a region of its geography:
    the template refuses other regions with a rule, checked before anything is created."""
    match = PROFILE_ID.match(model_id)
    if not match or match["geo"] == "global":
        return
    stack = Stack.of(scope)
    regions = ", ".join(destination_regions)
    advice = "choose the profile of this region's geography with ragchat:bedrock_model_id"
    if not Token.is_unresolved(stack.region) and stack.region not in destination_regions:
        raise ConfigError(f"ragchat:bedrock_model_id: {model_id} is served from {regions}; {advice}")
    CfnRule(
        scope,
        "BedrockProfileRegion",
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_or(*(Fn.condition_equals(stack.region, r) for r in destination_regions)),
                assert_description=f"The Bedrock inference profile {model_id} is served from {regions}: "
                f"deploy there, or {advice}",
            )
        ],
    )
