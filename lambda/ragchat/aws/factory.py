"""Builds the chat engine on AWS from `AwsSettings`: the same engine the local mode runs,
with the AWS adapters plugged in. Each port (generator, vector index, moderator) has a
registry of the kinds it can be, built by the name the settings choose. Clients are made
once per Lambda container.

Endpoints come from boto3's standard settings (`AWS_ENDPOINT_URL_<SERVICE>`), which is
how the tests point every client at local stand-ins without patching anything."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from ..catalog import chat_model, get_profile
from ..engine import ChatEngine
from ..interfaces import Embedder, Generator, Moderator, Retriever
from ..retrieval import HybridRetriever
from ..wikipedia import WikipediaRetrieval
from .bedrock import BedrockGenerator
from .dynamodb_store import DynamoDbConversationStore
from .embedder import SageMakerEmbedder
from .generators import SageMakerGenerator
from .moderation import ComprehendModerator, GptJtModerator, NoModerator
from .pinecone_index import PineconeVectorIndex, SecretApiKey
from .sagemaker import SageMakerRuntime, StartRetry
from .settings import AwsSettings, ConfigurationError, inference_components

# Short calls (embedding, moderation, DynamoDB, secrets) are safe to repeat and fail fast:
# bounded retries with exponential backoff and jitter on throttling and 5xx answers.
RETRIES = {"mode": "standard", "total_max_attempts": 3}
FAST = Config(connect_timeout=3, read_timeout=15, retries=RETRIES, max_pool_connections=20)
# A generation is not safe to repeat once the model started on it: its client makes one
# attempt, and StartRetry (sagemaker.py) repeats only what SageMaker refused before starting.
# The read timeout applies between streamed chunks.
NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}
GENERATION = Config(connect_timeout=3, read_timeout=120, retries=NO_RETRIES, max_pool_connections=20)


def generation_timeouts(budget_seconds: float) -> tuple[float, float]:
    """(connect, read) timeouts of one generation attempt: together at most 3/4 of the
    budget, so a refused first attempt leaves room for another."""
    return min(3.0, budget_seconds / 4), min(120.0, budget_seconds / 2)


def generation_config(settings: AwsSettings) -> Config:
    connect, read = generation_timeouts(settings.generation_timeout_seconds)
    return GENERATION.merge(Config(connect_timeout=connect, read_timeout=read))


def start_retry(settings: AwsSettings) -> StartRetry:
    connect, read = generation_timeouts(settings.generation_timeout_seconds)
    return StartRetry(attempt_seconds=connect + read, budget_seconds=settings.generation_timeout_seconds)


Port = TypeVar("Port")
Builder = Callable[["AwsSettings", "AwsClients"], Port]


@dataclass(frozen=True)
class AwsClients:
    sagemaker_fast: Any
    sagemaker_generation: Any
    dynamodb: Any
    secrets: Any | None
    comprehend: Any | None
    bedrock: Any | None = None

    @classmethod
    def create(cls, settings: AwsSettings, session: boto3.Session | None = None) -> AwsClients:
        session = session or boto3.Session()
        return cls(
            sagemaker_fast=session.client("sagemaker-runtime", config=FAST),
            sagemaker_generation=session.client("sagemaker-runtime", config=generation_config(settings)),
            dynamodb=session.client("dynamodb", config=FAST),
            secrets=(
                session.client("secretsmanager", config=FAST, region_name=secret_region(settings.pinecone_secret_arn))
                if settings.vector_index == "pinecone"
                else None
            ),
            comprehend=session.client("comprehend", config=FAST) if settings.moderation == "comprehend" else None,
            bedrock=session.client("bedrock-runtime", config=GENERATION) if settings.generator == "bedrock" else None,
        )


# -- the adapters, as the engine and `ragchat ingest` build them ------------------------


def runtime(settings: AwsSettings, client: Any, retry: StartRetry | None = None) -> SageMakerRuntime:
    """A SageMaker runtime that addresses each model's inference component, if it has one."""
    return SageMakerRuntime(client, inference_components(settings), settings.model_start_seconds, retry)


def sagemaker_embedder(endpoint: str, client: Any | None = None) -> Embedder:
    return SageMakerEmbedder(SageMakerRuntime(client or boto3.client("sagemaker-runtime", config=FAST)), endpoint)


def secret_region(secret_arn: str) -> str | None:
    """The region a secret lives in, from its ARN (None for a bare name: the client's own).
    Secrets Manager is regional: a secret imported from another region is read there."""
    parts = secret_arn.split(":")
    return parts[3] or None if len(parts) > 3 and parts[0] == "arn" else None


def secret_api_key(secret_arn: str, client: Any | None = None, max_age: float = 300.0) -> SecretApiKey:
    """The Pinecone key read from the stack's secret (cached, re-read when rejected)."""
    client = client or boto3.client("secretsmanager", config=FAST, region_name=secret_region(secret_arn))
    return SecretApiKey(client, secret_arn, max_age)


def pinecone_vector_index(name: str, api_key: Callable[..., str], host: str = "") -> PineconeVectorIndex:
    return PineconeVectorIndex(name, api_key, host=host)


# -- the ports' registries: a kind named in the settings -> how to build it ------------
# Adding a backend is one builder here and its name in settings.py's choices.


def sagemaker_generator(settings: AwsSettings, clients: AwsClients) -> Generator:
    contract = chat_model(settings.model_profile).contract
    generation = runtime(settings, clients.sagemaker_generation, start_retry(settings))
    return SageMakerGenerator(generation, settings.chat_endpoint, contract)


def bedrock_generator(settings: AwsSettings, clients: AwsClients) -> Generator:
    return BedrockGenerator(clients.bedrock, settings.bedrock_model_id)


def pinecone_index(settings: AwsSettings, clients: AwsClients) -> Retriever:
    """The question embedded by the MiniLM endpoint, then looked up in Pinecone with its
    BM25 word vector (the hybrid score; RAGCHAT_LEXICAL_WEIGHT=0 ranks dense-only)."""
    api_key = secret_api_key(settings.pinecone_secret_arn, clients.secrets, settings.secret_max_age_seconds)
    return HybridRetriever(
        sagemaker_embedder(settings.embedding_endpoint, clients.sagemaker_fast),
        pinecone_vector_index(settings.pinecone_index, api_key, host=settings.pinecone_host),
        settings.lexical_weight,
        settings.namespace,
    )


def wikipedia_index(settings: AwsSettings, clients: AwsClients) -> Retriever:
    """The Wikipedia retrieval endpoint (model_code/wikipedia_retrieval): it embeds the
    question itself (contriever), so no embedding call comes first."""
    return WikipediaRetrieval(SageMakerRuntime(clients.sagemaker_fast), settings.wikipedia_endpoint)


def gpt_jt_moderator(settings: AwsSettings, clients: AwsClients) -> Moderator:
    return GptJtModerator(runtime(settings, clients.sagemaker_fast), settings.moderation_endpoint)


def comprehend_moderator(settings: AwsSettings, clients: AwsClients) -> Moderator:
    return ComprehendModerator(clients.comprehend, settings.toxicity_threshold)


def no_moderator(settings: AwsSettings, clients: AwsClients) -> Moderator:
    return NoModerator()


GENERATORS: dict[str, Builder[Generator]] = {"sagemaker": sagemaker_generator, "bedrock": bedrock_generator}
# A vector index is built as the engine's Retriever: an embedder plus the index, or a
# service that embeds the question itself.
VECTOR_INDEXES: dict[str, Builder[Retriever]] = {"pinecone": pinecone_index, "wikipedia": wikipedia_index}
MODERATORS: dict[str, Builder[Moderator]] = {
    "endpoint": gpt_jt_moderator,
    "comprehend": comprehend_moderator,
    "off": no_moderator,
}


def build(registry: Mapping[str, Builder[Port]], port: str, settings: AwsSettings, clients: AwsClients) -> Port:
    """The adapter of the kind the settings choose for `port` (an AwsSettings field)."""
    kind = getattr(settings, port)
    try:
        builder = registry[kind]
    except KeyError:
        raise ConfigurationError(f"{port} {kind!r} has no adapter; choose one of {', '.join(registry)}") from None
    return builder(settings, clients)


def build_aws_engine(settings: AwsSettings, clients: AwsClients | None = None) -> ChatEngine:
    clients = clients or AwsClients.create(settings)
    return ChatEngine(
        retriever=build(VECTOR_INDEXES, "vector_index", settings, clients),
        generator=build(GENERATORS, "generator", settings, clients),
        moderator=build(MODERATORS, "moderation", settings, clients),
        store=DynamoDbConversationStore(clients.dynamodb, settings.table, settings.conversation_ttl_days),
        profile=get_profile(settings.model_profile),
        settings=settings.engine_settings(),
    )
