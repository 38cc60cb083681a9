"""JumpStart model packages in the template: models SageMaker serves from AWS's own
container and weights (the package's name and publishing accounts are catalog data).

The weights and image stay in AWS's accounts and SageMaker pulls them itself, so the
execution role needs no ECR or S3 grant and no Hugging Face token. The package name is
the same in every region; only the publishing account differs. The template refuses any
region the package is not published in with a rule, which CloudFormation checks before
it creates anything."""

from __future__ import annotations

from aws_cdk import CfnMapping, CfnRule, CfnRuleAssertion, Fn, Stack, Token
from constructs import Construct

from ragchat.catalog import ModelPackage

from .config import ConfigError


class UnsupportedRegion(ConfigError):
    """The stack's region has no copy of the model package."""


def model_package_arn(scope: Construct, construct_id: str, package: ModelPackage) -> str:
    """The package's ARN in the stack's region: looked up in a template mapping when the
    region is only known at deploy time, with a rule that names the regions offered."""
    stack = Stack.of(scope)
    regions = ", ".join(package.regions)
    if not Token.is_unresolved(stack.region) and stack.region not in package.accounts:
        raise UnsupportedRegion(
            f"ragchat:chat_model: the JumpStart model package {package.name} is published in "
            f"{regions} only; this stack is in {stack.region}"
        )
    accounts = CfnMapping(
        scope, f"{construct_id}Accounts", mapping={r: {"account": a} for r, a in package.accounts.items()}, lazy=True
    )
    CfnRule(
        scope,
        f"{construct_id}Region",
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_or(*(Fn.condition_equals(stack.region, r) for r in package.regions)),
                assert_description=f"The JumpStart model package {package.name} is published in "
                f"{regions} only: deploy there or choose another ragchat:chat_model",
            )
        ],
    )
    account = accounts.find_in_map(stack.region, "account")
    return f"arn:{stack.partition}:sagemaker:{stack.region}:{account}:model-package/{package.name}"
