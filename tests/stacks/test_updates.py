"""What a later `cdk deploy` does when an instance type changes, and whether SageMaker
accepts it.

The update plan is worked out the way CloudFormation does: a resource whose changed
property is create-only (per the resource's registry schema, the one cfn-lint ships) is
replaced, and so is every property that points at a replaced resource; anything else is
updated in place. SageMaker refuses an `UpdateEndpoint` that changes the instance type of
a variant registered with Application Auto Scaling, so the plan is accepted only if no
updated endpoint has a scaling target."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cdk_helpers import resources, synth


def create_only(kind: str) -> set[str]:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", kind).schema
    return {path.removeprefix("/properties/").split("/")[0] for path in schema.get("createOnlyProperties", [])}


def references(value) -> set[str]:
    """The logical ids a property value points at (Ref, Fn::GetAtt)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


@dataclass(frozen=True)
class Plan:
    added: set[str]
    removed: set[str]
    replaced: set[str]
    updated: set[str]


def update_plan(old: dict, new: dict) -> Plan:
    before, after = old["Resources"], new["Resources"]
    common = sorted(set(before) & set(after))
    replaced: set[str] = set()
    changed = True
    while changed:  # a replacement changes every Ref/GetAtt to it, which can replace more
        changed = False
        for name in common:
            if name in replaced:
                continue
            old_props, new_props = before[name].get("Properties", {}), after[name].get("Properties", {})
            differs = {key for key in old_props.keys() | new_props.keys() if old_props.get(key) != new_props.get(key)}
            differs |= {key for key, value in new_props.items() if references(value) & replaced}
            if differs & create_only(after[name]["Type"]):
                replaced.add(name)
                changed = True
    updated = {
        name
        for name in common
        if name not in replaced
        and (
            before[name].get("Properties") != after[name].get("Properties")
            or references(after[name].get("Properties", {})) & replaced
        )
    }
    return Plan(set(after) - set(before), set(before) - set(after), replaced, updated)


def refused_by_sagemaker(plan: Plan, old: dict, new: dict) -> list[str]:
    """Endpoints that get an UpdateEndpoint while registered as a scaling target."""
    registered = set()
    for template in (old, new):
        for target in resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").values():
            registered |= references(target["ResourceId"])
    return sorted(
        name
        for name in plan.updated
        if new["Resources"][name]["Type"] == "AWS::SageMaker::Endpoint" and name in registered
    )


def variants(template: dict) -> dict[str, str]:
    """Endpoint config logical id prefix (the construct) -> instance type."""
    return {
        name.split("Config")[0]: props["ProductionVariants"][0]["InstanceType"]
        for name, props in resources(template, "AWS::SageMaker::EndpointConfig").items()
    }


@pytest.mark.parametrize(
    ("setting", "construct", "new_type"),
    [
        ("chat_instance_type", "ChatLlm", "ml.g5.24xlarge"),
        ("moderation_instance_type", "ModerationLlm", "ml.g5.4xlarge"),
        ("embedding_instance_type", "Embedding", "ml.m5.large"),
    ],
)
def test_changing_an_instance_type_is_an_update_sagemaker_accepts(default_template, setting, construct, new_type):
    new = synth(**{setting: new_type})[0]
    assert variants(new)[construct] == new_type != variants(default_template)[construct]
    plan = update_plan(default_template, new)
    (config,) = [n for n in plan.replaced if n.startswith(f"{construct}Config")]
    assert new["Resources"][config]["Type"] == "AWS::SageMaker::EndpointConfig", "a new config is created"
    (endpoint,) = [n for n in plan.updated if n.startswith(f"{construct}Endpoint")]
    assert endpoint not in plan.replaced, "the endpoint keeps its name: UpdateEndpoint to the new config"
    assert not [n for n in plan.replaced if new["Resources"][n]["Type"] == "AWS::SageMaker::Endpoint"]
    assert refused_by_sagemaker(plan, default_template, new) == []
    assert not plan.added and not plan.removed


def test_the_plan_flags_an_update_of_an_autoscaled_variant():
    """Why min = max registers nothing: with a scaling target on the chat variant, the same
    change is an UpdateEndpoint that SageMaker refuses (deregister first: see the README)."""
    old = synth(chat_max_instances=2)[0]
    new = synth(chat_max_instances=2, chat_instance_type="ml.g5.24xlarge")[0]
    plan = update_plan(old, new)
    (refused,) = refused_by_sagemaker(plan, old, new)
    assert refused.startswith("ChatLlmEndpoint")


def test_the_plan_reads_create_only_properties_from_the_schemas():
    assert "ProductionVariants" in create_only("AWS::SageMaker::EndpointConfig")
    assert "EndpointConfigName" not in create_only("AWS::SageMaker::Endpoint")
