"""The settings contract between the CDK stack and the Lambda: every `RAGCHAT_*` variable,
its default and its allowed values, declared once.

The stack writes the function's environment with `AwsSettings(...).to_env()`; the Lambda
reads it back with `AwsSettings.from_env()`. Plain data (no boto3, no aws_cdk), so both
sides import this module. A missing or invalid variable stops the service at startup
with a message naming it, instead of failing on the first request."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..catalog import CatalogError, chat_model
from ..engine import EngineSettings

# The choices of each port the AWS factory builds (its registries hold the same names).
MODERATION_MODES = ("endpoint", "comprehend", "off")
VECTOR_INDEXES = ("pinecone", "wikipedia")
DEFAULT_PINECONE_INDEX = "retrieval-augmentation-aws"
ENGINE_DEFAULTS = EngineSettings()
# Set (to "true") by the stack when the deployment is parked: no endpoints, so the Lambda
# serves the parked app and reads none of the settings below.
PARKED_ENV = "RAGCHAT_PARKED"


class ConfigurationError(RuntimeError):
    """The environment does not describe a usable deployment."""


def _var(name: str, default: Any = MISSING) -> Any:
    return field(default=default, metadata={"env": name})


@dataclass(frozen=True)
class AwsSettings:
    model_profile: str = _var("RAGCHAT_MODEL_PROFILE")
    table: str = _var("RAGCHAT_TABLE")
    chat_endpoint: str = _var("RAGCHAT_CHAT_ENDPOINT", "")
    bedrock_model_id: str = _var("RAGCHAT_BEDROCK_MODEL_ID", "")  # a model or inference profile id
    vector_index: str = _var("RAGCHAT_VECTOR_INDEX", "pinecone")
    embedding_endpoint: str = _var("RAGCHAT_EMBEDDING_ENDPOINT", "")  # pinecone: the question's vector
    wikipedia_endpoint: str = _var("RAGCHAT_WIKIPEDIA_ENDPOINT", "")  # wikipedia: embeds the question itself
    pinecone_index: str = _var("RAGCHAT_PINECONE_INDEX", DEFAULT_PINECONE_INDEX)
    pinecone_secret_arn: str = _var("RAGCHAT_PINECONE_SECRET_ARN", "")  # the ARN, never the key
    pinecone_host: str = _var("RAGCHAT_PINECONE_HOST", "")  # empty: resolved from the index name
    namespace: str = _var("RAGCHAT_PINECONE_NAMESPACE", ENGINE_DEFAULTS.namespace)
    secret_max_age_seconds: int = _var("RAGCHAT_SECRET_MAX_AGE_SECONDS", 300)
    moderation: str = _var("RAGCHAT_MODERATION", "endpoint")
    moderation_endpoint: str = _var("RAGCHAT_MODERATION_ENDPOINT", "")
    toxicity_threshold: float = _var("RAGCHAT_TOXICITY_THRESHOLD", 0.5)
    conversation_ttl_days: int = _var("RAGCHAT_CONVERSATION_TTL_DAYS", 30)
    retrieval_top_k: int = _var("RAGCHAT_RETRIEVAL_TOP_K", ENGINE_DEFAULTS.retrieval_top_k)
    context_budget_tokens: int = _var("RAGCHAT_CONTEXT_BUDGET_TOKENS", 0)  # 0: derived from the model profile
    lexical_weight: float = _var("RAGCHAT_LEXICAL_WEIGHT", ENGINE_DEFAULTS.lexical_weight)  # 0: dense only
    min_score: float = _var("RAGCHAT_MIN_SCORE", ENGINE_DEFAULTS.min_score)  # the no-answer threshold
    retrieval_timeout_seconds: float = _var(
        "RAGCHAT_RETRIEVAL_TIMEOUT_SECONDS", ENGINE_DEFAULTS.retrieval_timeout_seconds
    )
    # scale to zero: the inference component serving each model (empty: a classic endpoint),
    # and about how long a model takes to start when a request finds it scaled to zero
    chat_inference_component: str = _var("RAGCHAT_CHAT_INFERENCE_COMPONENT", "")
    moderation_inference_component: str = _var("RAGCHAT_MODERATION_INFERENCE_COMPONENT", "")
    model_start_seconds: int = _var("RAGCHAT_MODEL_START_SECONDS", 600)
    # the most one generation may take, retries included: set by the stack inside the Lambda
    # timeout, leaving room for the steps before and after it
    generation_timeout_seconds: float = _var("RAGCHAT_GENERATION_TIMEOUT_SECONDS", 240.0)

    @property
    def generator(self) -> str:
        """The generator backend, from the model's catalog entry."""
        return chat_model(self.model_profile).backend

    def engine_settings(self) -> EngineSettings:
        # The no-answer threshold is calibrated on the FAQ's hybrid scores: the Wikipedia
        # endpoint scores on another scale, so it has none (as in the local Wikipedia mode).
        return EngineSettings(
            context_budget_tokens=self.context_budget_tokens or None,
            retrieval_top_k=self.retrieval_top_k,
            lexical_weight=self.lexical_weight,
            min_score=self.min_score if self.vector_index == "pinecone" else 0.0,
            retrieval_timeout_seconds=self.retrieval_timeout_seconds,
            namespace=self.namespace,
        )

    def to_env(self) -> dict[str, str]:
        """The function's environment: every setting with a value."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) != ""}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name, raw = f.metadata["env"], env.get(f.metadata["env"], "")
            if raw == "" and f.default is MISSING:
                values[f.name] = ""  # reported by validate() with the others missing
            elif raw != "":
                values[f.name] = raw if f.type == "str" else _number(name, raw, int if f.type == "int" else float)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Every needed setting is there, the choices are known, and each chosen backend
        has the settings it needs; the error names every variable at fault."""
        missing = [_env(name) for name in self.required() if getattr(self, name) == ""]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        try:
            chat_model(self.model_profile)
        except CatalogError as exc:
            raise ConfigurationError(f"RAGCHAT_MODEL_PROFILE: {exc}") from None
        for key, allowed in (("moderation", MODERATION_MODES), ("vector_index", VECTOR_INDEXES)):
            if getattr(self, key) not in allowed:
                raise ConfigurationError(f"{_env(key)}={getattr(self, key)!r}: choose one of {', '.join(allowed)}")

    def required(self) -> tuple[str, ...]:
        """The settings with no default, and those the chosen generator, vector index and
        moderation need."""
        needs = {
            ("generator", "sagemaker"): ("chat_endpoint",),
            ("generator", "bedrock"): ("bedrock_model_id",),
            ("vector_index", "pinecone"): ("embedding_endpoint", "pinecone_index", "pinecone_secret_arn"),
            ("vector_index", "wikipedia"): ("wikipedia_endpoint",),
            ("moderation", "endpoint"): ("moderation_endpoint",),
        }
        chosen = {"vector_index": self.vector_index, "moderation": self.moderation}
        with contextlib.suppress(CatalogError):  # an unknown model is reported on its own
            chosen["generator"] = self.generator
        always = tuple(f.name for f in fields(self) if f.default is MISSING)
        return always + tuple(
            name for (port, kind), names in needs.items() if chosen.get(port) == kind for name in names
        )


def _env(name: str) -> str:
    return next(f.metadata["env"] for f in fields(AwsSettings) if f.name == name)


def _number(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r}: expected a {kind.__name__}") from None
    if value < 0:
        raise ConfigurationError(f"{name}={raw!r}: must not be negative")
    return value


def inference_components(settings: AwsSettings) -> dict[str, str]:
    """Endpoint name -> the inference component to address on it (scale to zero)."""
    pairs = (
        (settings.chat_endpoint, settings.chat_inference_component),
        (settings.moderation_endpoint, settings.moderation_inference_component),
    )
    return {endpoint: component for endpoint, component in pairs if endpoint and component}
