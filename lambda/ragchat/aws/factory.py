"""Builds the chat engine on AWS from `AwsSettings`: the same engine the local mode runs,
with the AWS adapters plugged in. Clients are made once per Lambda container.

Endpoints come from boto3's standard settings (`AWS_ENDPOINT_URL_<SERVICE>`), which is
how the tests point every client at local stand-ins without patching anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from ..engine import ChatEngine, EngineSettings
from ..interfaces import Moderator
from ..prompts import get_profile
from .dynamodb_store import DynamoDbConversationStore
from .embedder import SageMakerEmbedder
from .generators import CONTRACTS, SageMakerGenerator
from .moderation import ComprehendModerator, GptJtModerator, NoModerator
from .pinecone_index import PineconeVectorIndex, SecretApiKey
from .sagemaker import SageMakerRuntime
from .settings import AwsSettings

# Bounded retries with exponential backoff and jitter on throttling and 5xx answers.
RETRIES = {"mode": "standard", "total_max_attempts": 3}
# Short calls (embedding, moderation, DynamoDB, secrets) fail fast; generation streams a
# long reply, and the read timeout applies between chunks, so it can stay moderate.
FAST = Config(connect_timeout=3, read_timeout=15, retries=RETRIES, max_pool_connections=20)
GENERATION = Config(connect_timeout=3, read_timeout=120, retries=RETRIES, max_pool_connections=20)


@dataclass(frozen=True)
class AwsClients:
    sagemaker_fast: Any
    sagemaker_generation: Any
    dynamodb: Any
    secrets: Any
    comprehend: Any | None

    @classmethod
    def create(cls, settings: AwsSettings, session: boto3.Session | None = None) -> AwsClients:
        session = session or boto3.Session()
        return cls(
            sagemaker_fast=session.client("sagemaker-runtime", config=FAST),
            sagemaker_generation=session.client("sagemaker-runtime", config=GENERATION),
            dynamodb=session.client("dynamodb", config=FAST),
            secrets=session.client("secretsmanager", config=FAST),
            comprehend=session.client("comprehend", config=FAST) if settings.moderation == "comprehend" else None,
        )


def build_moderator(settings: AwsSettings, clients: AwsClients) -> Moderator:
    if settings.moderation == "endpoint":
        return GptJtModerator(SageMakerRuntime(clients.sagemaker_fast), settings.moderation_endpoint)
    if settings.moderation == "comprehend":
        return ComprehendModerator(clients.comprehend, settings.toxicity_threshold)
    return NoModerator()


def build_aws_engine(settings: AwsSettings, clients: AwsClients | None = None) -> ChatEngine:
    clients = clients or AwsClients.create(settings)
    api_key = SecretApiKey(clients.secrets, settings.pinecone_secret_arn, settings.secret_max_age_seconds)
    return ChatEngine(
        embedder=SageMakerEmbedder(SageMakerRuntime(clients.sagemaker_fast), settings.embedding_endpoint),
        index=PineconeVectorIndex(settings.pinecone_index, api_key, host=settings.pinecone_host),
        generator=SageMakerGenerator(
            SageMakerRuntime(clients.sagemaker_generation),
            settings.chat_endpoint,
            CONTRACTS[settings.model_profile],
        ),
        moderator=build_moderator(settings, clients),
        store=DynamoDbConversationStore(clients.dynamodb, settings.table, settings.conversation_ttl_days),
        profile=get_profile(settings.model_profile),
        settings=EngineSettings(
            context_budget_tokens=settings.context_budget_tokens or None,
            retrieval_top_k=settings.retrieval_top_k,
            lexical_weight=settings.lexical_weight,
            min_score=settings.min_score,
            retrieval_timeout_seconds=settings.retrieval_timeout_seconds,
            namespace=settings.namespace,
        ),
    )
