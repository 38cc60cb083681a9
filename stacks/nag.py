"""cdk-nag AwsSolutions findings this design accepts, each with its reason.

Every acknowledgement names one rule (and, for IAM5, the exact wildcard) on one construct,
so a new wildcard anywhere else still fails the checks."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import Construct

from .chat_stack import RagChatStack

ENDPOINT_WILDCARDS = {
    "Resource::*": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; "
    "PutMetricData is limited to the SageMaker namespaces by condition",
    "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*": (
        "SageMaker writes endpoint logs to /aws/sagemaker/Endpoints/<generated endpoint name>; the name is only "
        "known after creation, so the grant is limited to SageMaker's endpoint log-group prefix in this account"
    ),
}


def _ack(scope: Construct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def acknowledge_findings(stack: RagChatStack) -> None:
    for endpoint in stack.endpoints.values():
        policy = endpoint.role.node.find_child("DefaultPolicy")
        for wildcard, reason in ENDPOINT_WILDCARDS.items():
            _ack(policy, f"AwsSolutions-IAM5[{wildcard}]", reason)
    if stack.config.chat_model_s3_uri:
        bucket, keys = stack.config.weights_object_pattern  # what the grant names
        _ack(
            stack.endpoints["chat"].role.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{keys}]",
            "The model weights are many files under the prefix the user named; reads are limited to that prefix",
        )
    function_policy = stack.function.role.node.find_child("DefaultPolicy")
    _ack(
        function_policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions"
        + ("; Comprehend DetectToxicContent has none either" if stack.config.moderation == "comprehend" else ""),
    )
    if stack.secret is not None and not stack.config.pinecone_secret_arn:
        _ack(
            stack.secret,
            "AwsSolutions-SMG4",
            "The secret holds a third-party Pinecone API key that AWS cannot rotate; rotate it in Pinecone and "
            "update the secret with the documented command",
        )
