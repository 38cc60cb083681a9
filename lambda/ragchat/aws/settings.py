"""The Lambda's configuration: environment variables set by the stack, read once.

A missing or invalid variable stops the service at startup with a message naming it,
instead of failing on the first request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..engine import EngineSettings
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
    retrieval_top_k: int = EngineSettings.retrieval_top_k
    context_budget_tokens: int = 0  # 0: derived from the model profile's window
    lexical_weight: float = EngineSettings.lexical_weight  # 0 for a Pinecone index without sparse vectors
    min_score: float = EngineSettings.min_score
    retrieval_timeout_seconds: float = 5.0
    secret_max_age_seconds: int = 300
    toxicity_threshold: float = 0.5

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
            retrieval_top_k=_number(env, "RAGCHAT_RETRIEVAL_TOP_K", cls.retrieval_top_k, int),
            context_budget_tokens=_number(env, "RAGCHAT_CONTEXT_BUDGET_TOKENS", 0, int),
            lexical_weight=_number(env, "RAGCHAT_LEXICAL_WEIGHT", cls.lexical_weight, float),
            min_score=_number(env, "RAGCHAT_MIN_SCORE", cls.min_score, float),
            retrieval_timeout_seconds=_number(env, "RAGCHAT_RETRIEVAL_TIMEOUT_SECONDS", 5.0, float),
            secret_max_age_seconds=_number(env, "RAGCHAT_SECRET_MAX_AGE_SECONDS", 300, int),
            toxicity_threshold=_number(env, "RAGCHAT_TOXICITY_THRESHOLD", 0.5, float),
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
