"""The Lambda's configuration: environment variables set by the stack, read once.

A missing or invalid variable stops the service at startup with a message naming it,
instead of failing on the first request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from .generators import CONTRACTS

MODERATION_MODES = ("endpoint", "comprehend", "off")
Number = TypeVar("Number", int, float)


class ConfigurationError(RuntimeError):
    """The environment does not describe a usable deployment."""


@dataclass(frozen=True)
class AwsSettings:
    model_profile: str
    chat_endpoint: str
    embedding_endpoint: str
    table: str
    pinecone_secret_arn: str
    pinecone_index: str
    moderation: str = "endpoint"
    moderation_endpoint: str = ""
    conversation_ttl_days: int = 30
    pinecone_host: str = ""  # empty: resolved from the index name through Pinecone's control plane
    namespace: str = ""
    retrieval_top_k: int = 5
    context_budget_chars: int = 1000
    retrieval_timeout_seconds: float = 5.0
    secret_max_age_seconds: int = 300
    toxicity_threshold: float = 0.5
    # scale to zero: the inference component serving each model (empty: a classic endpoint),
    # and about how long a model takes to start when a request finds it scaled to zero
    chat_inference_component: str = ""
    moderation_inference_component: str = ""
    model_start_seconds: int = 600
    # the most one generation may take, retries included: set by the stack inside the Lambda
    # timeout, leaving room for the steps before and after it
    generation_timeout_seconds: float = 240.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if env is None else env
        required = {
            "model_profile": "RAGCHAT_MODEL_PROFILE",
            "chat_endpoint": "RAGCHAT_CHAT_ENDPOINT",
            "embedding_endpoint": "RAGCHAT_EMBEDDING_ENDPOINT",
            "table": "RAGCHAT_TABLE",
            "pinecone_secret_arn": "RAGCHAT_PINECONE_SECRET_ARN",
            "pinecone_index": "RAGCHAT_PINECONE_INDEX",
        }
        moderation = env.get("RAGCHAT_MODERATION", "endpoint")
        if moderation == "endpoint":
            required["moderation_endpoint"] = "RAGCHAT_MODERATION_ENDPOINT"
        missing = [name for name in required.values() if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        if moderation not in MODERATION_MODES:
            raise ConfigurationError(f"RAGCHAT_MODERATION={moderation!r}: choose one of {', '.join(MODERATION_MODES)}")
        profile = env["RAGCHAT_MODEL_PROFILE"]
        if profile not in CONTRACTS:
            raise ConfigurationError(f"RAGCHAT_MODEL_PROFILE={profile!r}: choose one of {', '.join(CONTRACTS)}")
        values = {field: env[name] for field, name in required.items()}
        return cls(
            moderation=moderation,
            conversation_ttl_days=_number(env, "RAGCHAT_CONVERSATION_TTL_DAYS", 30, int),
            pinecone_host=env.get("RAGCHAT_PINECONE_HOST", ""),
            namespace=env.get("RAGCHAT_PINECONE_NAMESPACE", ""),
            retrieval_top_k=_number(env, "RAGCHAT_RETRIEVAL_TOP_K", 5, int),
            context_budget_chars=_number(env, "RAGCHAT_CONTEXT_BUDGET_CHARS", 1000, int),
            retrieval_timeout_seconds=_number(env, "RAGCHAT_RETRIEVAL_TIMEOUT_SECONDS", 5.0, float),
            secret_max_age_seconds=_number(env, "RAGCHAT_SECRET_MAX_AGE_SECONDS", 300, int),
            toxicity_threshold=_number(env, "RAGCHAT_TOXICITY_THRESHOLD", 0.5, float),
            chat_inference_component=env.get("RAGCHAT_CHAT_INFERENCE_COMPONENT", ""),
            moderation_inference_component=env.get("RAGCHAT_MODERATION_INFERENCE_COMPONENT", ""),
            model_start_seconds=_number(env, "RAGCHAT_MODEL_START_SECONDS", 600, int),
            generation_timeout_seconds=_number(env, "RAGCHAT_GENERATION_TIMEOUT_SECONDS", 240.0, float),
            **values,
        )


def _number(env: Mapping[str, str], name: str, default: Number, kind: type[Number]) -> Number:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
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
