"""JumpStart model packages: models SageMaker serves from AWS's own container and weights.

Llama-2-7b-chat is gated: JumpStart publishes it as a SageMaker model package per region,
whose container speaks the dialog contract (`CustomAttributes: accept_eula=true`) the
Lambda's generator uses. The weights and image stay in AWS's accounts and SageMaker pulls
them itself, so the execution role needs no ECR or S3 grant and no Hugging Face token.

The package name is the same in every region; only the publishing account differs. The
regions listed are those JumpStart publishes the Llama-2 packages in. The template refuses
any other region with a rule, which CloudFormation checks before it creates anything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import CfnMapping, CfnRule, CfnRuleAssertion, Fn, Stack, Token
from constructs import Construct

from .config import ConfigError


@dataclass(frozen=True)
class ModelPackage:
    name: str
    accounts: Mapping[str, str]  # region -> the account that publishes the package there

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self.accounts))

    def arn(self, scope: Construct, construct_id: str) -> str:
        """The package's ARN in the stack's region: looked up in a template mapping when
        the region is only known at deploy time, with a rule that names the regions offered."""
        stack = Stack.of(scope)
        if not Token.is_unresolved(stack.region) and stack.region not in self.accounts:
            raise UnsupportedRegion(
                f"ragchat:chat_model: the JumpStart model package {self.name} is published in "
                f"{', '.join(self.regions)} only; this stack is in {stack.region}"
            )
        accounts = CfnMapping(
            scope, f"{construct_id}Accounts", mapping={r: {"account": a} for r, a in self.accounts.items()}, lazy=True
        )
        CfnRule(
            scope,
            f"{construct_id}Region",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_or(*(Fn.condition_equals(stack.region, r) for r in self.regions)),
                    assert_description=f"The JumpStart model package {self.name} is published in "
                    f"{', '.join(self.regions)} only: deploy there or choose another ragchat:chat_model",
                )
            ],
        )
        account = accounts.find_in_map(stack.region, "account")
        return f"arn:{stack.partition}:sagemaker:{stack.region}:{account}:model-package/{self.name}"


class UnsupportedRegion(ConfigError):
    """The stack's region has no copy of the model package."""


# meta-textgeneration-llama-2-7b-f (Llama-2-7b-chat), JumpStart's model package v4.
LLAMA2_7B_CHAT = ModelPackage(
    name="llama2-7b-f-v4-71eeccf76ddf33f2a18d2e16b9c7f302",
    accounts={
        "ap-southeast-1": "192199979996",
        "ap-southeast-2": "666831318237",
        "eu-west-1": "985815980388",
        "us-east-1": "865070037744",
        "us-east-2": "057799348421",
        "us-west-2": "594846645681",
    },
)
