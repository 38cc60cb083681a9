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
    if not destination_regions:
        raise ValueError(f"inference profile {model_id} needs its destination regions")
    model = match["model"]
    resources = [f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"]
    resources += [f"arn:{partition}:bedrock:{r}::foundation-model/{model}" for r in destination_regions]
    if match["geo"] == "global":
        resources.append(f"arn:{partition}:bedrock:::foundation-model/{model}")
    return resources
