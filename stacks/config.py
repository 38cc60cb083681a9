"""The deployment's configuration: one typed, validated object read from CDK context.

Every key is a context key prefixed `ragchat:` (in cdk.json, or `-c ragchat:KEY=VALUE`).
Values from `-c` arrive as strings and are converted; anything invalid fails synth with
a message naming the key and what it accepts, before any resource is defined."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ragchat.aws.settings import DEFAULT_PINECONE_INDEX, MODERATION_MODES, VECTOR_INDEXES
from ragchat.catalog import (
    BEDROCK_MODEL_ID,
    CHAT_MODELS,
    DEFAULT_CHAT_MODEL,
    GEO_PROFILE_ID,
    INSTANCE_TYPE,
    REGION,
    BedrockServing,
    ChatModel,
    SageMakerServing,
    chat_model,
)

from .instance_facts import NO_BF16_FAMILIES, family, gpu_count, smallest_with

PREFIX = "ragchat:"

FUNCTION_URL_AUTH = ("AWS_IAM", "NONE")
LOG_RETENTION_DAYS = (1, 3, 7, 14, 30, 60, 90, 180, 365, 731, 1827, 3653)
# a secret's complete ARN ends in "-" and six random characters, which a partial ARN (the name only) lacks
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$")
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")  # CloudFormation's rule for a stack name
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
MODEL_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[A-Za-z0-9/-]{1,170}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REVISION = re.compile(r"^[0-9a-f]{40}$")
PINECONE_INDEX = re.compile(r"^[a-z0-9][a-z0-9-]{0,44}$")
# The Wikipedia image build's handler (cdklabs-deploy-time-build's custom resource) runs only
# when CloudFormation asks, asynchronously (Lambda retries a throttled event): one concurrent
# run is all it needs, reserved like every function of the stack (checkov CKV_AWS_115), unless
# lambda_reserved_concurrency=0 turns reservations off.
BUILD_HANDLER_CONCURRENCY = 1
# checkov's suppression of its reserved-concurrency check when the user turned reservations off
NO_RESERVATION_SKIP = {
    "id": "CKV_AWS_115",
    "comment": "ragchat:lambda_reserved_concurrency=0: the account's concurrency quota leaves none to reserve "
    "(Lambda keeps 100 unreserved)",
}


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""


@dataclass(frozen=True)
class DeploymentConfig:
    stack_name: str = "RagChat"  # another name deploys a second, independent copy in the same account and region
    chat_model: str = DEFAULT_CHAT_MODEL  # a name in ragchat/catalog.py
    chat_instance_type: str = ""  # empty: the chat model's default
    chat_model_s3_uri: str = ""  # staged weights (model_code/upload_weights.py); empty: from the hub
    chat_model_revision: str = ""  # hub mode: the commit to load; empty: the one the model's entry pins, if any
    accept_llama2_eula: bool = False  # llama-2-chat only: you accept Meta's Llama 2 license
    chat_model_package_arn: str = ""  # model-package models only; empty: JumpStart's package in the stack's region
    chat_min_instances: int = 1
    chat_max_instances: int = 1
    bedrock_model_id: str = ""  # chat_model=bedrock only; empty: the catalog's default model
    bedrock_destination_regions: str = ""  # comma-separated; empty: the catalog's regions for the profile
    moderation: str = "endpoint"
    moderation_instance_type: str = "ml.g5.2xlarge"
    moderation_model_s3_uri: str = ""  # staged weights of GPT-JT-Moderation-6B; empty: from the hub
    moderation_model_revision: str = ""  # hub mode: the commit to load; empty: serving.properties' pin
    embedding_instance_type: str = "ml.t2.large"
    embedding_min_instances: int = 1
    embedding_max_instances: int = 1
    # Where the context comes from: your documents in Pinecone, or Wikipedia through the
    # retrieval endpoint on the image the stack builds (model_code/wikipedia_retrieval).
    knowledge_base: str = "pinecone"
    wikipedia_s3_uri: str = ""  # wikipedia only: the prefix model_code/stage_wikipedia.py filled
    # 4 vCPU, 32 GiB: the original needed about 20 GB of RAM for the whole dataset (README)
    wikipedia_instance_type: str = "ml.r5.xlarge"
    wikipedia_volume_gb: int = 128  # the staged prefix is copied to the endpoint's volume
    pinecone_index: str = DEFAULT_PINECONE_INDEX
    pinecone_secret_arn: str = ""  # empty: the stack creates the secret
    function_url_auth: str = "AWS_IAM"
    allow_public_function_url: bool = False
    retain_data: bool = False
    conversation_ttl_days: int = 30
    log_retention_days: int = 30
    lambda_memory_mb: int = 1024
    lambda_timeout_seconds: int = 300
    parked: bool = False  # true: no endpoints at all; the Lambda answers 503 `parked`
    scale_to_zero: bool = False  # true: the GPU models run as inference components that can reach 0 instances
    scale_to_zero_idle_minutes: int = 30  # no request this long: the model's instance is released
    alarm_email: str = ""  # empty: alarms go to the SNS topic only (subscribe to it yourself)
    # concurrent chat requests at most; the rest are throttled (429). 0: reserve nothing (accounts whose
    # concurrency quota is too low to reserve any: Lambda keeps 100 unreserved); the chat function then
    # shares the account's pool and has no ceiling of its own.
    lambda_reserved_concurrency: int = 20

    @property
    def model(self) -> ChatModel:
        """The chat model's catalog entry."""
        return chat_model(self.chat_model)

    @property
    def resolved_bedrock_model_id(self) -> str:
        return self.bedrock_model_id or self.model.serving.model_id

    @property
    def resolved_bedrock_destination_regions(self) -> tuple[str, ...]:
        """The regions the Bedrock inference profile routes to (empty for a foundation model
        or a global profile, which the grant covers without them)."""
        if self.bedrock_destination_regions:
            return tuple(r.strip() for r in self.bedrock_destination_regions.split(","))
        return tuple(self.model.serving.destination_regions.get(self.resolved_bedrock_model_id, ()))

    @property
    def resolved_chat_instance_type(self) -> str:
        """The chat endpoint's instance type; empty with Bedrock (no endpoint)."""
        return self.chat_instance_type or getattr(self.model.serving, "instance_type", "")

    @property
    def generation_timeout_seconds(self) -> int:
        """The most one generation may take, retries included: the Lambda timeout less a
        minute for the steps around it (moderation, retrieval, store), or half of a short one."""
        return max(self.lambda_timeout_seconds - 60, self.lambda_timeout_seconds // 2)

    def endpoint_instances(self) -> dict[str, int]:
        """Instance type -> the most instances of it the endpoints can run at once (what
        the SageMaker '<type> for endpoint usage' quotas must allow)."""
        counts: dict[str, int] = {}
        if self.parked:
            return counts
        wanted = []
        if isinstance(self.model.serving, SageMakerServing):  # Bedrock: no chat endpoint
            wanted.append((self.resolved_chat_instance_type, self.chat_max_instances))
        if self.moderation == "endpoint":
            wanted.append((self.moderation_instance_type, 1))
        if self.knowledge_base == "wikipedia":
            wanted.append((self.wikipedia_instance_type, 1))
        else:
            wanted.append((self.embedding_instance_type, self.embedding_max_instances))
        for instance_type, count in wanted:
            counts[instance_type] = counts.get(instance_type, 0) + count
        return counts

    def reserved_concurrency(self) -> int:
        """The account concurrency the stack's functions reserve: the chat function's, plus the
        Wikipedia image build's handler when that endpoint exists (what preflight checks)."""
        if not self.lambda_reserved_concurrency:
            return 0
        building = self.knowledge_base == "wikipedia" and not self.parked
        return self.lambda_reserved_concurrency + (BUILD_HANDLER_CONCURRENCY if building else 0)

    @property
    def wikipedia_data(self) -> tuple[str, str]:
        """(bucket, key prefix ending in /) of the staged Wikipedia index."""
        bucket, _, prefix = self.wikipedia_s3_uri.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return bucket, f"{prefix}/" if prefix else ""

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeploymentConfig:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in context.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :]
            if name not in known:
                raise ConfigError(f"{key}: unknown setting; known settings: {', '.join(PREFIX + k for k in known)}")
            values[name] = _convert(key, raw, type(known[name].default))
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        def check(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"{PREFIX}{key}: {message} (got {getattr(self, key)!r})")

        def one_of(key: str, allowed: tuple) -> None:
            check(getattr(self, key) in allowed, key, f"must be one of {', '.join(map(str, allowed))}")

        def between(key: str, low: int, high: int) -> None:
            check(low <= getattr(self, key) <= high, key, f"must be between {low} and {high}")

        check(
            bool(STACK_NAME.match(self.stack_name)),
            "stack_name",
            "must start with a letter and hold only letters, digits and hyphens (at most 128)",
        )
        one_of("chat_model", tuple(CHAT_MODELS))
        one_of("moderation", MODERATION_MODES)
        one_of("knowledge_base", VECTOR_INDEXES)
        one_of("function_url_auth", FUNCTION_URL_AUTH)
        one_of("log_retention_days", LOG_RETENTION_DAYS)
        wikipedia = self.knowledge_base == "wikipedia"
        check(
            (self.wikipedia_s3_uri != "") == wikipedia,
            "wikipedia_s3_uri",
            "is required with knowledge_base=wikipedia (fill it with model_code/stage_wikipedia.py), and used "
            "with it only",
        )
        check(
            self.wikipedia_s3_uri == "" or bool(S3_URI.match(self.wikipedia_s3_uri)),
            "wikipedia_s3_uri",
            "must be an s3://bucket/prefix URI",
        )
        between("wikipedia_volume_gb", 10, 512)
        for key in ("chat_instance_type", "moderation_instance_type", "embedding_instance_type",
                    "wikipedia_instance_type"):  # fmt: skip
            value = getattr(self, key)
            check(
                value == "" and key == "chat_instance_type" or bool(INSTANCE_TYPE.match(value)),
                key,
                "must be a SageMaker instance type such as ml.g5.12xlarge",
            )
        for prefix in ("chat", "embedding"):
            between(f"{prefix}_min_instances", 1, 20)
            between(f"{prefix}_max_instances", 1, 20)
            check(
                getattr(self, f"{prefix}_max_instances") >= getattr(self, f"{prefix}_min_instances"),
                f"{prefix}_max_instances",
                f"must be at least {prefix}_min_instances",
            )
        for key in ("chat_model_s3_uri", "moderation_model_s3_uri"):
            check(
                getattr(self, key) == "" or bool(S3_URI.match(getattr(self, key))),
                key,
                "must be an s3://bucket/prefix URI",
            )
        for key in ("chat_model_revision", "moderation_model_revision"):
            check(
                getattr(self, key) == "" or bool(REVISION.match(getattr(self, key))),
                key,
                "must be a 40-character commit id",
            )
        serving, license_ = self.model.serving, self.model.license
        sagemaker = {m.name: m.serving for m in CHAT_MODELS.values() if isinstance(m.serving, SageMakerServing)}
        s3_models = [name for name, s in sagemaker.items() if s.weights_key]
        check(
            self.chat_model_s3_uri == "" or getattr(serving, "model_package", None) is None,
            "chat_model_s3_uri",
            f"the {self.chat_model} model package brings its own weights",
        )
        check(
            self.moderation_model_s3_uri == "" or self.moderation == "endpoint",
            "moderation_model_s3_uri",
            "staged moderation weights need ragchat:moderation=endpoint",
        )
        check(
            self.chat_model_s3_uri == "" or getattr(serving, "weights_key", None) is not None,
            "chat_model_s3_uri",
            f"weights from S3 are supported for {', '.join(s3_models)} only",
        )
        if license_ is not None:
            check(
                getattr(self, license_.setting),
                license_.setting,
                f"{self.chat_model} is served under {license_.name} ({license_.url}) and the chat service "
                "accepts it on every request: set it to true to accept it",
            )
        check(
            self.chat_model_package_arn == "" or bool(MODEL_PACKAGE_ARN.match(self.chat_model_package_arn)),
            "chat_model_package_arn",
            "must be a SageMaker model package ARN",
        )
        package_models = [name for name, s in sagemaker.items() if s.model_package]
        check(
            self.chat_model_package_arn == "" or getattr(serving, "model_package", None) is not None,
            "chat_model_package_arn",
            f"a model package ARN is used by the {', '.join(package_models)} model only",
        )
        self._validate_gpus(check)
        self._validate_bedrock(check)
        check(
            bool(PINECONE_INDEX.match(self.pinecone_index)),
            "pinecone_index",
            "must be 1-45 lower-case letters, digits or hyphens",
        )
        check(
            self.pinecone_secret_arn == "" or bool(SECRET_ARN.match(self.pinecone_secret_arn)),
            "pinecone_secret_arn",
            "must be a Secrets Manager secret's complete ARN, ending in its 6-character suffix "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf; `aws secretsmanager describe-secret "
            "--secret-id NAME --query ARN` prints it)",
        )
        check(
            self.function_url_auth != "NONE" or self.allow_public_function_url,
            "function_url_auth",
            "NONE makes the chat URL public to anyone: also set ragchat:allow_public_function_url=true",
        )
        between("conversation_ttl_days", 1, 3650)
        between("lambda_memory_mb", 256, 10240)
        between("lambda_timeout_seconds", 30, 900)
        between("lambda_reserved_concurrency", 0, 1000)
        between("scale_to_zero_idle_minutes", 10, 1440)
        check(
            not self.scale_to_zero or self.chat_max_instances == 1,
            "chat_max_instances",
            "with scale_to_zero the chat model runs one copy on at most one instance; leave it at 1",
        )
        check(self.alarm_email == "" or bool(EMAIL.match(self.alarm_email)), "alarm_email", "must be an email address")

    def _validate_gpus(self, check: Any) -> None:
        """The LLMs' instances have the GPUs their containers need (see `instance_facts`);
        parked, no endpoint runs, and the type is checked when it is unparked."""
        if self.parked:
            return
        needs = []
        serving = self.model.serving
        if isinstance(serving, SageMakerServing):
            why = f"{self.chat_model} runs on {serving.accelerators} GPU(s) (its tensor parallel degree)"
            needs.append(("chat_instance_type", self.resolved_chat_instance_type, serving.accelerators, why))
        if self.moderation == "endpoint":
            why = "GPT-JT-Moderation-6B runs on a GPU"
            needs.append(("moderation_instance_type", self.moderation_instance_type, 1, why))
        if isinstance(serving, SageMakerServing) and serving.environment.get("OPTION_DTYPE") == "bf16":
            check(
                family(self.resolved_chat_instance_type) not in NO_BF16_FAMILIES,
                "chat_instance_type",
                f"{self.chat_model} runs in bf16, which T4 and V100 GPUs ({', '.join(NO_BF16_FAMILIES)}) lack: "
                "choose a G5, G6, G6e, P4 or P5 type",
            )
        for key, instance_type, wanted, why in needs:
            found = gpu_count(instance_type)
            check(
                found is None or found >= wanted,
                key,
                f"{why}; {instance_type} has {found or 'no'} NVIDIA GPU{'' if found == 1 else 's'}: choose "
                f"{smallest_with(wanted, instance_type)} or larger",
            )

    def _validate_bedrock(self, check: Any) -> None:
        bedrock = isinstance(self.model.serving, BedrockServing)
        bedrock_models = ", ".join(m.name for m in CHAT_MODELS.values() if isinstance(m.serving, BedrockServing))
        for key in ("bedrock_model_id", "bedrock_destination_regions"):
            check(getattr(self, key) == "" or bedrock, key, f"is a setting of chat_model={bedrock_models} only")
        check(
            self.chat_instance_type == "" or not bedrock,
            "chat_instance_type",
            "Bedrock runs no endpoint: there is no instance type to choose",
        )
        if not bedrock:
            return
        check(
            self.bedrock_model_id == "" or bool(BEDROCK_MODEL_ID.match(self.bedrock_model_id)),
            "bedrock_model_id",
            "must be a Bedrock model id (amazon.nova-2-lite-v1:0) or a cross-region inference profile id "
            "(us.amazon.nova-2-lite-v1:0, eu..., apac..., global...)",
        )
        regions = self.resolved_bedrock_destination_regions
        check(
            all(REGION.match(r) for r in regions),
            "bedrock_destination_regions",
            "must be AWS region names separated by commas, such as us-east-1,us-east-2,us-west-2",
        )
        check(
            bool(regions) or not GEO_PROFILE_ID.match(self.resolved_bedrock_model_id),
            "bedrock_destination_regions",
            f"the inference profile {self.resolved_bedrock_model_id} routes to regions this catalog does not know: "
            "name them (`aws bedrock get-inference-profile --inference-profile-identifier <id>` lists them), so "
            "the function's grant can name the model in each",
        )


def _convert(key: str, raw: Any, kind: type) -> Any:
    """Context values from -c are strings; cdk.json values keep their JSON types."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ConfigError(f"{key}: must be true or false (got {raw!r})")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        raise ConfigError(f"{key}: must be a whole number (got {raw!r})")
    if not isinstance(raw, str):
        raise ConfigError(f"{key}: must be a string (got {raw!r})")
    return raw.strip()
