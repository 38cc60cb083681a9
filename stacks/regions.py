"""The region checks inside the template: a region without Function URLs or without the
Deep Learning Containers is refused at synth when the stack's region is known, or by a
template rule (checked by CloudFormation before it creates anything) when it is not."""

from __future__ import annotations

from aws_cdk import CfnMapping, CfnRule, CfnRuleAssertion, Fn, Stack, Token
from constructs import Construct

from .config import ConfigError
from .region_facts import DLC_ACCOUNTS, NO_FUNCTION_URLS, container_problem, function_url_problem


class UnsupportedRegion(ConfigError):
    """The stack's region lacks something the configuration needs."""


def require_function_urls(scope: Construct) -> None:
    """Refuse a region without Function URLs: at synth when the region is known, else by a
    template rule that CloudFormation checks before it creates anything."""
    stack = Stack.of(scope)
    if not Token.is_unresolved(stack.region):
        if problem := function_url_problem(stack.region):
            raise UnsupportedRegion(problem)
        return
    CfnRule(
        scope,
        "FunctionUrlRegion",
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_not(Fn.condition_contains(list(NO_FUNCTION_URLS), stack.region)),
                assert_description="Lambda Function URLs are not offered in this region "
                f"({', '.join(NO_FUNCTION_URLS)} have none); the chat service is served through one, "
                "so deploy in another region",
            )
        ],
    )


def dlc_account(scope: Construct) -> str:
    """The Deep Learning Containers account of the stack's region: a literal when the region
    is known at synth, else a lookup in a template mapping guarded by a rule that names the
    regions offered (instead of the bare mapping error a missing key gives)."""
    stack = Stack.of(scope)
    if not Token.is_unresolved(stack.region):
        if problem := container_problem(stack.region):
            raise UnsupportedRegion(problem)
        return DLC_ACCOUNTS[stack.region]
    mapping = stack.node.try_find_child("DlcAccounts")
    if mapping is None:
        mapping = CfnMapping(stack, "DlcAccounts", mapping={r: {"account": a} for r, a in DLC_ACCOUNTS.items()})
        CfnRule(
            stack,
            "DlcRegion",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_contains(sorted(DLC_ACCOUNTS), stack.region),
                    assert_description="The SageMaker Deep Learning Containers this stack deploys are not "
                    "published in this region; deploy in a region SageMaker serves them in",
                )
            ],
        )
    return mapping.find_in_map(stack.region, "account")
