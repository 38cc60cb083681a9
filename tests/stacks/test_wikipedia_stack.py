"""`-c ragchat:knowledge_base=wikipedia`: the stack owns an ECR repository, builds
model_code/wikipedia_retrieval into it at deploy time (CodeBuild, tag = the build context's
hash), serves it on a CPU endpoint with network isolation and the staged S3 prefix as model
data, grants exactly those, and has no Pinecone secret, output or embedding endpoint."""

from __future__ import annotations

import json
import shutil

import pytest

from cdk_helpers import ROOT, WIKIPEDIA, cfn_lint_errors, resources, synth_once
from stacks.built_image import context_tag
from stacks.config import ConfigError, DeploymentConfig

WIKI = WIKIPEDIA
IMAGE_DIR = ROOT / "model_code" / "wikipedia_retrieval"


def wikipedia_stack():
    return synth_once(**WIKI)  # cdk-nag: raises on any unacknowledged finding


def one(template: dict, kind: str, prefix: str = "") -> tuple[str, dict]:
    (item,) = [(k, v) for k, v in resources(template, kind).items() if k.startswith(prefix)]
    return item


def test_the_stack_owns_the_repository_and_destroy_empties_it():
    template, _ = wikipedia_stack()
    name, repository = one(template, "AWS::ECR::Repository")
    assert repository["EmptyOnDelete"] is True and repository["_raw"]["DeletionPolicy"] == "Delete"
    assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert name.startswith("WikipediaImageRepository")


def test_the_image_is_built_at_deploy_time_with_the_build_context_hash_as_tag():
    template, _ = wikipedia_stack()
    _, build = one(template, "Custom::CDKContainerImageBuild")
    assert build["imageTag"] == context_tag(IMAGE_DIR)
    assert build["buildCommand"].startswith("docker buildx build --platform linux/amd64")
    assert "WikipediaImageRepository" in json.dumps(build["repositoryUri"])
    _, project = one(template, "AWS::CodeBuild::Project")
    assert project["Environment"]["PrivilegedMode"] is True and project["Artifacts"] == {"Type": "NO_ARTIFACTS"}


def test_the_tag_follows_the_build_context(tmp_path):
    context = tmp_path / "ctx"
    shutil.copytree(IMAGE_DIR, context, ignore=shutil.ignore_patterns("__pycache__"))
    before = context_tag(context)
    (context / "__pycache__").mkdir(exist_ok=True)
    (context / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"cache")
    assert context_tag(context) == before, "caches are not part of the build"
    (context / "handler.py").write_text((context / "handler.py").read_text() + "\n# changed\n")
    assert context_tag(context) != before


def test_the_retrieval_model_runs_that_image_isolated_on_the_staged_data():
    template, _ = wikipedia_stack()
    _, model = one(template, "AWS::SageMaker::Model", "WikipediaRetrieval")
    container = model["PrimaryContainer"]
    image = json.dumps(container["Image"])
    assert "WikipediaImageRepository" in image and '"WikipediaImageBuild' in image and "ImageTag" in image
    assert model["EnableNetworkIsolation"] is True
    assert container["ModelDataSource"] == {
        "S3DataSource": {"CompressionType": "None", "S3DataType": "S3Prefix", "S3Uri": "s3://my-bucket/wikipedia/"}
    }
    _, config = one(template, "AWS::SageMaker::EndpointConfig", "WikipediaRetrieval")
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["VolumeSizeInGB"]) == ("ml.r5.xlarge", 128)
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == variant["ModelDataDownloadTimeoutInSeconds"]
    one(template, "AWS::SageMaker::Endpoint", "WikipediaRetrieval")


def test_grants_name_exactly_the_repository_the_prefix_and_the_endpoint():
    template, _ = wikipedia_stack()
    _, policy = one(template, "AWS::IAM::Policy", "WikipediaRetrievalExecutionRole")
    statements = {tuple(sorted(s["Action"])) if isinstance(s["Action"], list) else (s["Action"],): s
                  for s in policy["PolicyDocument"]["Statement"]}  # fmt: skip
    pull = statements[("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")]
    assert pull["Resource"] == {"Fn::GetAtt": [one(template, "AWS::ECR::Repository")[0], "Arn"]}
    assert json.dumps(statements[("s3:GetObject",)]["Resource"]).endswith(':s3:::my-bucket/wikipedia/*"]]}')
    listing = statements[("s3:ListBucket",)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["wikipedia/*"]}}
    assert not any(a.startswith("s3:Put") or a == "ecr:PutImage" for actions in statements for a in actions)

    _, function_policy = one(template, "AWS::IAM::Policy", "ChatFunctionRole")
    (invoke,) = [s for s in function_policy["PolicyDocument"]["Statement"] if "sagemaker:InvokeEndpoint" in s["Action"]]
    endpoints = {r["Ref"] for r in invoke["Resource"]}
    assert endpoints == set(resources(template, "AWS::SageMaker::Endpoint"))
    assert any(e.startswith("WikipediaRetrieval") for e in endpoints)


def test_no_pinecone_secret_output_or_embedding_endpoint(default_template):
    """The stack's own secret stays, unread and not granted: switching knowledge_base to
    wikipedia deleted the Pinecone key its owner had set, and switching back made a new
    placeholder, so retrieval ran without context. Same logical id in both modes."""
    template, _ = wikipedia_stack()
    assert set(resources(template, "AWS::SecretsManager::Secret")) == set(
        resources(default_template, "AWS::SecretsManager::Secret")
    )
    assert "secretsmanager" not in json.dumps(resources(template, "AWS::IAM::Policy"))
    assert not [k for k in template["Outputs"] if "Pinecone" in k]
    assert not [k for k in resources(template, "AWS::SageMaker::Endpoint") if k.startswith("Embedding")]
    _, function = one(template, "AWS::Lambda::Function", "ChatFunction")
    variables = function["Environment"]["Variables"]
    assert variables["RAGCHAT_VECTOR_INDEX"] == "wikipedia" and "RAGCHAT_PINECONE_SECRET_ARN" not in variables
    assert "WikipediaRetrievalEndpoint" in json.dumps(variables["RAGCHAT_WIKIPEDIA_ENDPOINT"])
    assert "WikipediaEndpointName" in template["Outputs"]


def test_every_function_reserves_its_concurrency_the_build_handler_included():
    """checkov's CKV_AWS_115 for each function; preflight counts the build handler too."""
    template, _ = wikipedia_stack()
    functions = resources(template, "AWS::Lambda::Function")
    (handler,) = [k for k in functions if k.startswith("DeployTimeBuildCustomResourceHandler")]
    assert functions[handler]["ReservedConcurrentExecutions"] == 1
    assert all(f.get("ReservedConcurrentExecutions") for f in functions.values()), sorted(functions)
    assert DeploymentConfig(**WIKI).reserved_concurrency() == DeploymentConfig().lambda_reserved_concurrency + 1
    assert DeploymentConfig(**WIKI, parked=True).reserved_concurrency() == DeploymentConfig().reserved_concurrency()


def test_cfn_lint_is_clean():
    _, outdir = wikipedia_stack()
    errors, report = cfn_lint_errors([outdir / "RagChat.template.json"])
    assert errors == [], report


def test_every_build_acknowledgement_has_a_reason():
    from stacks.nag import BUILD_FINDINGS

    for findings in BUILD_FINDINGS.values():
        assert all(len(reason) > 40 for reason in findings.values())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"knowledge_base": "wikipedia"}, "wikipedia_s3_uri: is required with knowledge_base=wikipedia"),
        ({"wikipedia_s3_uri": "s3://b/p/"}, "wikipedia_s3_uri: is required with knowledge_base=wikipedia"),
        ({**WIKI, "wikipedia_s3_uri": "https://b/p"}, "must be an s3://bucket/prefix URI"),
        ({**WIKI, "wikipedia_volume_gb": 5}, "wikipedia_volume_gb: must be between 10 and 512"),
        ({**WIKI, "wikipedia_instance_type": "r5.xlarge"}, "wikipedia_instance_type: must be a SageMaker instance"),
        ({"knowledge_base": "both"}, "knowledge_base: must be one of pinecone, wikipedia"),
    ],
)
def test_bad_settings_fail_synth_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        DeploymentConfig(**settings).validate()
