import pytest

from ragchat.catalog import CHAT_MODELS
from stacks.config import ConfigError, DeploymentConfig


def test_defaults():
    config = DeploymentConfig.from_context({})
    assert config.chat_model == "gpt-neoxt-chat" and config.resolved_chat_instance_type == "ml.g5.12xlarge"
    assert config.embedding_instance_type == "ml.t2.large" and config.moderation == "endpoint"
    assert config.pinecone_index == "retrieval-augmentation-aws" and config.function_url_auth == "AWS_IAM"


def test_cli_strings_are_converted_and_other_context_ignored():
    config = DeploymentConfig.from_context(
        {"ragchat:chat_max_instances": "3", "ragchat:retain_data": "true", "@aws-cdk/x": True}
    )
    assert config.chat_max_instances == 3 and config.retain_data is True


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("chat_model", "gpt-5", f"must be one of {', '.join(CHAT_MODELS)}"),
        ("moderation", "maybe", "must be one of endpoint, comprehend, off"),
        ("function_url_auth", "OPEN", "must be one of AWS_IAM, NONE"),
        ("function_url_auth", "NONE", "allow_public_function_url"),
        ("chat_instance_type", "g5.12xlarge", "SageMaker instance type"),
        ("moderation_instance_type", "big", "SageMaker instance type"),
        ("embedding_instance_type", "", "SageMaker instance type"),
        ("chat_min_instances", "0", "between 1 and 20"),
        ("chat_max_instances", "21", "between 1 and 20"),
        ("embedding_min_instances", "x", "whole number"),
        ("chat_model_s3_uri", "https://bucket/x", "s3://"),
        ("pinecone_index", "Bad_Name", "lower-case"),
        ("chat_model_package_arn", "arn:aws:sagemaker:us-east-1:1:model/x", "SageMaker model package ARN"),
        ("pinecone_secret_arn", "arn:aws:s3:::bucket", "Secrets Manager secret's complete ARN"),
        # a partial ARN (no 6-character suffix) passed, then failed synth with a CDK traceback
        ("pinecone_secret_arn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:pinecone", "6-character suffix"),
        ("stack_name", "rag_chat", "letters, digits and hyphens"),
        ("stack_name", "1RagChat", "must start with a letter"),
        ("retain_data", "yes", "true or false"),
        ("conversation_ttl_days", "0", "between 1 and 3650"),
        ("log_retention_days", "10", "must be one of"),
        ("lambda_memory_mb", "128", "between 256 and 10240"),
        ("lambda_timeout_seconds", "901", "between 30 and 900"),
        ("lambda_reserved_concurrency", "-1", "between 0 and 1000"),
        ("alarm_email", "oncall", "email address"),
        ("scale_to_zero_idle_minutes", "5", "between 10 and 1440"),
        ("chat_model_revision", "main", "40-character commit id"),
        ("moderation_model_s3_uri", "bucket/x", "s3://"),
        ("not_a_setting", "1", "unknown setting"),
        # GPT-NeoXT runs tensor parallel 4: on one GPU the endpoint fails after its 20-minute start
        ("chat_instance_type", "ml.g5.2xlarge", "has 1 NVIDIA GPU: choose ml.g5.12xlarge or larger"),
        ("moderation_instance_type", "ml.t2.medium", "has no NVIDIA GPUs: choose ml.g5.xlarge or larger"),
        ("chat_instance_type", "ml.m5.xlarge", "has no NVIDIA GPUs"),
    ],
)
def test_each_invalid_value_names_the_key(key, value, message):
    with pytest.raises(ConfigError) as error:
        DeploymentConfig.from_context({f"ragchat:{key}": value})
    assert f"ragchat:{key}" in str(error.value) and message in str(error.value)


def test_max_below_min_is_refused():
    with pytest.raises(ConfigError, match="ragchat:chat_max_instances: must be at least chat_min_instances"):
        DeploymentConfig.from_context({"ragchat:chat_min_instances": 2, "ragchat:chat_max_instances": 1})


def test_staged_weights_for_the_models_served_from_a_container():
    with pytest.raises(ConfigError, match="ragchat:chat_model_s3_uri: the llama-2-chat model package brings"):
        DeploymentConfig.from_context(
            {
                "ragchat:chat_model": "llama-2-chat",
                "ragchat:accept_llama2_eula": "true",
                "ragchat:chat_model_s3_uri": "s3://bucket/p",
            }
        )
    with pytest.raises(ConfigError, match="ragchat:moderation_model_s3_uri: staged moderation weights need"):
        DeploymentConfig.from_context({"ragchat:moderation": "off", "ragchat:moderation_model_s3_uri": "s3://bucket/p"})
    assert DeploymentConfig.from_context(
        {"ragchat:chat_model": "flan-t5", "ragchat:chat_model_s3_uri": "s3://bucket/p"}
    )


def test_llama_2_chat_needs_the_license_accepted():
    with pytest.raises(ConfigError, match=r"ragchat:accept_llama2_eula: .*Llama 2 license \(https://ai.meta.com"):
        DeploymentConfig.from_context({"ragchat:chat_model": "llama-2-chat"})
    accepted = {"ragchat:chat_model": "llama-2-chat", "ragchat:accept_llama2_eula": "true"}
    assert DeploymentConfig.from_context(accepted).resolved_chat_instance_type == "ml.g5.4xlarge"


def test_a_model_package_arn_is_for_llama_2_chat_only():
    arn = "arn:aws:sagemaker:eu-central-1:123456789012:model-package/llama2-7b-f-v5-0123"
    with pytest.raises(ConfigError, match="ragchat:chat_model_package_arn: .*llama-2-chat model only"):
        DeploymentConfig.from_context({"ragchat:chat_model_package_arn": arn})


def test_endpoint_instances_are_what_the_quotas_must_allow():
    assert DeploymentConfig().endpoint_instances() == {"ml.g5.12xlarge": 1, "ml.g5.2xlarge": 1, "ml.t2.large": 1}
    config = DeploymentConfig(chat_model="flan-t5", moderation_instance_type="ml.g5.2xlarge", chat_max_instances=2)
    assert config.endpoint_instances() == {"ml.g5.2xlarge": 3, "ml.t2.large": 1}
    assert "ml.g5.2xlarge" not in DeploymentConfig(moderation="comprehend").endpoint_instances()


def test_scale_to_zero_runs_one_chat_copy():
    with pytest.raises(ConfigError, match="ragchat:chat_max_instances: with scale_to_zero"):
        DeploymentConfig.from_context({"ragchat:scale_to_zero": "true", "ragchat:chat_max_instances": "2"})
    assert DeploymentConfig.from_context({"ragchat:scale_to_zero": "true"}).scale_to_zero_idle_minutes == 30


@pytest.mark.parametrize(
    ("settings", "key", "message"),
    [
        ({"bedrock_model_id": "us.amazon.nova-2-lite-v1:0"}, "bedrock_model_id", "chat_model=bedrock only"),
        ({"chat_model": "bedrock", "bedrock_model_id": "nova lite"}, "bedrock_model_id", "Bedrock model id"),
        ({"chat_model": "bedrock", "chat_instance_type": "ml.g5.xlarge"}, "chat_instance_type", "no endpoint"),
        (
            {"chat_model": "bedrock", "bedrock_model_id": "eu.amazon.nova-2-lite-v1:0"},
            "bedrock_destination_regions",
            "routes to regions this catalog does not know",
        ),
        (
            {"chat_model": "bedrock", "bedrock_destination_regions": "us-east-1,us-east"},
            "bedrock_destination_regions",
            "region names separated by commas",
        ),
    ],
)
def test_bedrock_settings_are_checked_naming_the_key(settings, key, message):
    with pytest.raises(ConfigError) as error:
        DeploymentConfig.from_context({f"ragchat:{k}": v for k, v in settings.items()})
    assert f"ragchat:{key}" in str(error.value) and message in str(error.value)


def test_bedrock_defaults_come_from_the_catalog_and_can_be_overridden():
    default = DeploymentConfig.from_context({"ragchat:chat_model": "bedrock"})
    assert default.resolved_bedrock_model_id == "us.amazon.nova-2-lite-v1:0"
    assert default.resolved_bedrock_destination_regions == ("us-east-1", "us-east-2", "us-west-2")
    chosen = DeploymentConfig.from_context(
        {
            "ragchat:chat_model": "bedrock",
            "ragchat:bedrock_model_id": "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            "ragchat:bedrock_destination_regions": "eu-central-1, eu-west-1,eu-west-3",
        }
    )
    assert chosen.resolved_bedrock_destination_regions == ("eu-central-1", "eu-west-1", "eu-west-3")
    foundation_model = DeploymentConfig.from_context(
        {"ragchat:chat_model": "bedrock", "ragchat:bedrock_model_id": "amazon.nova-2-lite-v1:0"}
    )
    assert foundation_model.resolved_bedrock_destination_regions == ()


def test_instances_with_enough_gpus_or_of_unknown_families_pass():
    from stacks.instance_facts import gpu_count

    assert DeploymentConfig.from_context({"ragchat:chat_instance_type": "ml.g6.12xlarge"}).chat_instance_type
    qwen = {"ragchat:chat_model": "qwen2.5-7b-instruct", "ragchat:moderation": "comprehend"}
    assert DeploymentConfig.from_context(qwen | {"ragchat:chat_instance_type": "ml.g6e.xlarge"})
    assert DeploymentConfig.from_context({"ragchat:moderation_instance_type": "ml.g7.2xlarge"})  # a newer family
    assert (gpu_count("ml.g5.48xlarge"), gpu_count("ml.p4d.24xlarge"), gpu_count("ml.inf2.xlarge")) == (8, 8, 0)
    with pytest.raises(ConfigError, match="runs in bf16, which T4 and V100 GPUs"):
        DeploymentConfig.from_context(qwen | {"ragchat:chat_instance_type": "ml.g4dn.xlarge"})
    parked = {"ragchat:parked": "true", "ragchat:moderation_instance_type": "ml.t2.medium"}
    assert DeploymentConfig.from_context(parked).parked  # no endpoint runs: checked when unparked
