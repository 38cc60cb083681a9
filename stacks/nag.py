"""cdk-nag AwsSolutions findings this design accepts, each with its reason.

Every acknowledgement names one rule (and, for IAM5, the exact wildcard) on one construct,
so a new wildcard anywhere else still fails the checks."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import Construct

from .chat_stack import RagChatStack
from .weights import weights_pattern

ENDPOINT_WILDCARDS = {
    "Resource::*": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; "
    "PutMetricData is limited to the SageMaker namespaces by condition",
    "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*": (
        "SageMaker writes endpoint logs to /aws/sagemaker/Endpoints/<generated endpoint name>; the name is only "
        "known after creation, so the grant is limited to SageMaker's endpoint log-group prefix in this account"
    ),
}


MANAGED = "arn:<AWS::Partition>:iam::aws:policy"
ASSETS_BUCKET = "arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>"
# cdklabs-deploy-time-build's own resources: singletons at the stack's root (fixed ids from
# the library), acknowledged there only. The build project's log and report-group wildcards
# are added below with the project's logical id.
BUILD_FINDINGS = {
    "DeployTimeBuildCustomResourceHandler": {
        f"AwsSolutions-IAM4[Policy::{MANAGED}/service-role/AWSLambdaBasicExecutionRole]": (
            "The build trigger (the library's custom-resource handler) writes only its own logs, which is what the "
            "basic execution policy grants"
        ),
        "AwsSolutions-L1": "cdklabs-deploy-time-build pins its handler's runtime (nodejs22.x, supported until "
        "2027-04); it runs only during deploys, to start the build, and moves with the pinned library",
    },
    "ContainerImageBuildAmd64": {
        f"AwsSolutions-IAM4[Policy::{MANAGED}/AmazonElasticContainerRegistryPublicReadOnly]": (
            "The build pulls its base image from public.ecr.aws; the AWS managed policy is read-only on ECR Public"
        ),
        "AwsSolutions-IAM5[Resource::*]": "ecr:GetAuthorizationToken has no resource-level permissions; push and "
        "pull are granted on the stack's own repository only",
        "AwsSolutions-IAM5[Action::s3:GetObject*]": "CDK's Asset.grantRead: the build downloads its source zip "
        "from the CDK bootstrap assets bucket, read-only",
        "AwsSolutions-IAM5[Action::s3:GetBucket*]": "CDK's Asset.grantRead on the CDK bootstrap assets bucket, "
        "read-only",
        "AwsSolutions-IAM5[Action::s3:List*]": "CDK's Asset.grantRead on the CDK bootstrap assets bucket, read-only",
        f"AwsSolutions-IAM5[Resource::{ASSETS_BUCKET}/*]": "The source zip's key is a content hash; reads are "
        "limited to the CDK bootstrap assets bucket",
        "AwsSolutions-CB4": "The project has no artifacts (NO_ARTIFACTS): its one output is the image pushed to the "
        "stack's ECR repository, encrypted at rest by ECR; CodeBuild encrypts its logs with the AWS managed key",
    },
}


def _ack(scope: Construct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def acknowledge_findings(stack: RagChatStack) -> None:
    for endpoint in stack.endpoints.values():
        policy = endpoint.role.node.find_child("DefaultPolicy")
        for wildcard, reason in ENDPOINT_WILDCARDS.items():
            _ack(policy, f"AwsSolutions-IAM5[{wildcard}]", reason)
        if endpoint.staged_weights_uri:
            bucket, keys = weights_pattern(endpoint.staged_weights_uri)  # what the grant names
            _ack(
                policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{keys}]",
                "The model weights are many files under the prefix the user named; reads are limited to that prefix",
            )
    if "wikipedia" in stack.endpoints:  # knowledge_base=wikipedia, not parked
        _acknowledge_wikipedia(stack)
    function_policy = stack.function.role.node.find_child("DefaultPolicy")
    _ack(
        function_policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions"
        + ("; Comprehend DetectToxicContent has none either" if stack.config.moderation == "comprehend" else ""),
    )
    _ack(
        stack.monitoring.topic,
        "AwsSolutions-SNS2",
        "Alarm notifications carry alarm names and states only; CloudWatch cannot publish to a topic encrypted "
        "with the AWS managed SNS key, and a customer managed key would bill monthly for no secret",
    )
    if stack.owned_secret is not None:
        _ack(
            stack.owned_secret,
            "AwsSolutions-SMG4",
            "The secret holds a third-party Pinecone API key that AWS cannot rotate; rotate it in Pinecone and "
            "update the secret with the documented command",
        )


def _acknowledge_wikipedia(stack: RagChatStack) -> None:
    bucket, prefix = stack.config.wikipedia_data  # what the endpoint's grant names
    _ack(
        stack.endpoints["wikipedia"].role.node.find_child("DefaultPolicy"),
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*]",
        "SageMaker copies every object under the staged prefix (index, snippets, encoder) to the instance; "
        "reads are limited to that prefix",
    )
    for child in stack.node.children:
        findings = next((f for name, f in BUILD_FINDINGS.items() if child.node.id.startswith(name)), None)
        if findings is None:
            continue
        for rule, reason in findings.items():
            _ack(child, rule, reason)
        if child.node.id.startswith("ContainerImageBuildAmd64"):
            project = stack.get_logical_id(child.node.find_child("Resource"))
            prefix = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>"
            _ack(
                child,
                f"AwsSolutions-IAM5[Resource::{prefix.format(service='logs')}:log-group:/aws/codebuild/<{project}>:*]",
                "CodeBuild's standard grant on its own project's log group and streams",
            )
            _ack(
                child,
                f"AwsSolutions-IAM5[Resource::{prefix.format(service='codebuild')}:report-group/<{project}>-*]",
                "CodeBuild's standard grant on the report groups named after its own project (none are used)",
            )
