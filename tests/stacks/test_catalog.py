"""The model catalog, entry by entry: each entry is complete, synthesizes (cdk-nag and
cfn-lint clean), deploys the container its payload contract speaks with its own serving
configuration, and the function's environment loads through the Lambda's settings loader.
The contract examples of each entry are replayed in tests/model_code/test_contract_examples.py."""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import pytest

from cdk_helpers import ROOT, cfn_lint_errors, resources, synth
from ragchat.aws.settings import AwsSettings
from ragchat.catalog import CHAT_MODELS, ENTRIES, CatalogError, ChatModel, _index
from ragchat.payloads import TgiContract
from stacks.bedrock import invoke_resources
from stacks.config import DeploymentConfig

PLACEHOLDER = "<resolved at deploy>"


def settings_for(model: ChatModel) -> dict:
    return {"chat_model": model.name} | ({model.license.setting: True} if model.license else {})


@functools.cache
def synthesized(settings: frozenset) -> tuple[dict, str]:
    template, outdir = synth(**dict(settings))
    return template, str(outdir)


def chat_endpoint(template: dict) -> tuple[dict, dict]:
    """The chat endpoint's production variant and the AWS::SageMaker::Model it serves."""
    (config,) = [c for c in resources(template, "AWS::SageMaker::EndpointConfig") if c.startswith("ChatLlm")]
    (variant,) = template["Resources"][config]["Properties"]["ProductionVariants"]
    return variant, template["Resources"][variant["ModelName"]["Fn::GetAtt"][0]]["Properties"]


def function_environment(template: dict) -> dict:
    (function,) = [f for name, f in resources(template, "AWS::Lambda::Function").items() if name.startswith("Chat")]
    return function["Environment"]["Variables"]


def bedrock_grant(template: dict) -> list[str]:
    """The resources of the function's Bedrock statement, rendered with placeholders for
    the pseudo parameters (partition, region, account)."""
    (statement,) = [
        s
        for policy in resources(template, "AWS::IAM::Policy").values()
        for s in policy["PolicyDocument"]["Statement"]
        if "bedrock:InvokeModel" in s["Action"]
    ]
    assert statement["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    pseudo = {"AWS::Partition": "{partition}", "AWS::Region": "{region}", "AWS::AccountId": "{account}"}
    return [
        "".join(p if isinstance(p, str) else pseudo[p["Ref"]] for p in r["Fn::Join"][1]) if isinstance(r, dict) else r
        for r in statement["Resource"]
    ]


def check_bedrock_entry(model: ChatModel) -> None:
    """A Bedrock entry: no chat endpoint, the model id in the function's settings, and a
    grant on exactly the model (for a profile: on it and the model in every destination region)."""
    template, outdir = synthesized(frozenset(settings_for(model).items()))  # cdk-nag: raises on any finding
    assert [c for c in resources(template, "AWS::SageMaker::EndpointConfig") if c.startswith("ChatLlm")] == []
    environment = function_environment(template)
    assert environment["RAGCHAT_MODEL_PROFILE"] == model.name
    assert environment["RAGCHAT_BEDROCK_MODEL_ID"] == model.serving.model_id
    assert "RAGCHAT_CHAT_ENDPOINT" not in environment
    regions = model.serving.destination_regions.get(model.serving.model_id, ())
    where = {"partition": "{partition}", "region": "{region}", "account": "{account}"}
    assert bedrock_grant(template) == invoke_resources(model.serving.model_id, regions, **where)
    errors, output = cfn_lint_errors(list((ROOT / outdir).glob("*.template.json")))
    assert errors == [], output


def check_entry(model: ChatModel, readme_examples: dict[str, str]) -> None:
    """Everything one catalog entry must get right; raises AssertionError on the first lack."""
    assert model.problems() == [], model.problems()
    if model.backend == "bedrock":
        check_bedrock_entry(model)
        return
    serving = model.serving
    if serving.model_archive:
        assert (ROOT / "model_code" / serving.model_archive / "serving.properties").is_file()
    if model.license:
        assert type(getattr(DeploymentConfig(), model.license.setting)) is bool, "the license setting is a config key"
    documented = [name for name in dataclasses.astuple(model.examples) if name]
    assert [name for name in documented if name not in readme_examples] == [], "examples not in model_code/README.md"

    template, outdir = synthesized(frozenset(settings_for(model).items()))  # cdk-nag: raises on any finding
    variant, sagemaker_model = chat_endpoint(template)
    assert variant["InstanceType"] == serving.instance_type
    container = sagemaker_model["PrimaryContainer"]
    served = json.dumps(container.get("Image") or container.get("ModelPackageName"))
    speaks = [f"/{name}:" if serving.image else f"model-package/{name}" for name in model.contract.containers]
    assert any(marker in served for marker in speaks), f"{served} is not a container {model.contract} speaks"
    assert container.get("Environment", {}) == dict(serving.environment)
    assert ("ModelDataUrl" in container) == bool(serving.model_archive)
    assert function_environment(template)["RAGCHAT_MODEL_PROFILE"] == model.name
    errors, output = cfn_lint_errors(list((ROOT / outdir).glob("*.template.json")))
    assert errors == [], output


@pytest.mark.parametrize("model", ENTRIES, ids=lambda m: m.name)
def test_every_catalog_entry_deploys_what_its_contract_speaks(model, readme_examples):
    check_entry(model, readme_examples)


def complete() -> ChatModel:
    return CHAT_MODELS["gpt-neoxt-chat"]


@pytest.mark.parametrize(
    ("incomplete", "reported"),
    [
        (lambda m: dataclasses.replace(m, contract=None), "no payload contract"),
        (lambda m: dataclasses.replace(m, contract=TgiContract()), "TgiContract does not speak"),
        (lambda m: dataclasses.replace(m, examples=None), "no documented contract examples"),
        (lambda m: dataclasses.replace(m, serving=dataclasses.replace(m.serving, image=None)), "exactly one of"),
        (lambda m: dataclasses.replace(m, serving=dataclasses.replace(m.serving, hourly_usd=0)), "no hourly price"),
        (lambda m: dataclasses.replace(m, name="gpt-neoxt-chat-v2"), "its profile is named"),
        (lambda m: dataclasses.replace(m, profile=CHAT_MODELS["llama-2-chat"].profile), "profile renders messages"),
        (
            lambda m: dataclasses.replace(
                CHAT_MODELS["bedrock"],
                serving=dataclasses.replace(CHAT_MODELS["bedrock"].serving, model_id="eu.amazon.nova-2-lite-v1:0"),
            ),
            "no destination regions for the default inference profile eu.amazon.nova-2-lite-v1:0",
        ),
        (
            lambda m: dataclasses.replace(CHAT_MODELS["bedrock"], profile=CHAT_MODELS["flan-t5"].profile),
            "Converse takes messages",
        ),
    ],
)
def test_an_incomplete_entry_fails_the_catalog_check_and_the_catalog_test(incomplete, reported, readme_examples):
    broken = incomplete(complete())
    assert any(reported in problem for problem in broken.problems()), broken.problems()
    with pytest.raises(CatalogError, match=re.escape(reported)):
        _index((broken,))  # what importing the catalog does with every entry
    with pytest.raises(AssertionError):
        check_entry(broken, readme_examples)


def test_an_entry_whose_examples_are_not_documented_fails_the_catalog_test(readme_examples):
    undocumented = dataclasses.replace(complete(), examples=dataclasses.replace(complete().examples, reply="nowhere"))
    assert undocumented.problems() == []
    with pytest.raises(AssertionError, match="model_code/README.md"):
        check_entry(undocumented, readme_examples)


def test_two_entries_with_one_name_are_refused():
    with pytest.raises(CatalogError, match="two catalog entries"):
        _index((complete(), complete()))


# -- the settings contract: what the stack writes is what the Lambda reads --------------
CONFIGURATIONS = [settings_for(m) for m in ENTRIES] + [
    {"moderation": "comprehend"},
    {"moderation": "off", "conversation_ttl_days": 7, "pinecone_index": "my-index"},
    {"pinecone_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pinecone-AbCdEf"},
    {"knowledge_base": "wikipedia", "wikipedia_s3_uri": "s3://my-bucket/wikipedia/"},
]


@pytest.mark.parametrize("settings", CONFIGURATIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_the_function_environment_loads_through_the_lambda_settings(settings):
    template, _ = synthesized(frozenset(settings.items()))
    variables = function_environment(template)
    env = {name: value if isinstance(value, str) else PLACEHOLDER for name, value in variables.items()}

    loaded = AwsSettings.from_env(env)  # raises ConfigurationError naming anything missing or invalid

    config = DeploymentConfig(**settings)
    assert (loaded.model_profile, loaded.moderation, loaded.vector_index) == (
        config.chat_model,
        config.moderation,
        config.knowledge_base,
    )
    assert (loaded.pinecone_index, loaded.conversation_ttl_days) == (
        config.pinecone_index,
        config.conversation_ttl_days,
    )
    pinecone = config.knowledge_base == "pinecone"
    assert loaded.pinecone_secret_arn == (config.pinecone_secret_arn or PLACEHOLDER if pinecone else "")
    known = {f.metadata["env"] for f in dataclasses.fields(AwsSettings)}
    assert {name for name in variables if name.startswith("RAGCHAT_")} <= known
    references = {name: json.dumps(value) for name, value in variables.items() if not isinstance(value, str)}
    if config.model.backend == "sagemaker":
        assert '"ChatLlmEndpoint' in references["RAGCHAT_CHAT_ENDPOINT"]
    else:
        assert "RAGCHAT_CHAT_ENDPOINT" not in variables
        assert loaded.bedrock_model_id == config.resolved_bedrock_model_id
    retrieval = "WikipediaRetrievalEndpoint" if config.knowledge_base == "wikipedia" else "EmbeddingEndpoint"
    endpoint_variable = f"RAGCHAT_{'WIKIPEDIA' if config.knowledge_base == 'wikipedia' else 'EMBEDDING'}_ENDPOINT"
    assert f'"{retrieval}' in references[endpoint_variable]
    assert ("RAGCHAT_MODERATION_ENDPOINT" in references) == (config.moderation == "endpoint")


def test_the_readme_cost_table_prices_every_catalog_model():
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ") and "USD" not in line]
    for model in ENTRIES:
        option = f"ragchat:chat_model={model.name}"
        (row,) = (
            [r for r in rows if option in r]
            if model.name != "gpt-neoxt-chat"
            else [r for r in rows if r.startswith("| default:")]
        )
        if model.backend == "bedrock":  # no endpoint: nothing billed while idle but the embedding endpoint
            assert "no chat endpoint" in row and "per token" in row, row
        else:
            assert model.serving.instance_type in row and f"{model.serving.hourly_usd:.2f}" in row, row


def test_a_model_is_named_only_by_its_catalog_entry():
    """Code and serving configuration name a catalog model only in catalog.py (documents
    and tests may describe it)."""
    code = [p for p in ROOT.glob("*.py")] + [
        p
        for folder in ("lambda", "stacks", "model_code")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in (".py", ".properties", ".json", ".txt", ".sh") and "__pycache__" not in p.parts
    ]
    for model in ENTRIES:
        names = {value for key, value in getattr(model.serving, "environment", {}).items() if key == "HF_MODEL_ID"}
        for name in names:
            naming = sorted(str(p.relative_to(ROOT)) for p in code if name in p.read_text(errors="ignore"))
            assert naming == ["lambda/ragchat/catalog.py"], (name, naming)
