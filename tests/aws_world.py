"""What the AWS tests share: the names of the stand-in deployment and a handle on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from doubles import FAQ_DOCS, BagOfWordsEmbedder
from ragchat.aws.identity import ANONYMOUS
from ragchat.aws.settings import DEFAULT_PINECONE_INDEX, AwsSettings
from ragchat.engine import conversation_key
from ragchat.retrieval import Bm25Encoder
from standins.bedrock_runtime import BedrockRuntimeStandIn
from standins.comprehend import ComprehendStandIn
from standins.pinecone_server import PineconeStandIn
from standins.sagemaker_runtime import (
    EmbeddingContainer,
    LmiContainer,
    ModerationContainer,
    SageMakerRuntimeStandIn,
)

PINECONE_KEY = "pcsk_test_4f1c2a9e7b"  # the stand-in's key; tests assert it never leaks
INDEX = DEFAULT_PINECONE_INDEX
CHAT, EMBEDDING, MODERATION = "chat-endpoint", "embedding-endpoint", "moderation-endpoint"
BEDROCK_MODEL = "us.amazon.nova-2-lite-v1:0"  # a cross-region inference profile id
REPLY = "Managed Spot Training works with all instances supported in Amazon SageMaker."
BLOCKED_WORDS = ("poison", "kill")


def bag_of_words_384() -> BagOfWordsEmbedder:
    embedder = BagOfWordsEmbedder()
    embedder.dimension = 384
    return embedder


def moderation_rule(text: str) -> str:
    return "needs intervention" if any(w in text.lower() for w in BLOCKED_WORDS) else "casual"


def deploy_stand_ins(sagemaker: SageMakerRuntimeStandIn, pinecone: PineconeStandIn) -> None:
    """The stack's three endpoints, and the FAQ documents in the Pinecone index."""
    embedder = bag_of_words_384()
    sagemaker.deploy(CHAT, LmiContainer(REPLY))
    sagemaker.deploy(EMBEDDING, EmbeddingContainer(embedder.embed))
    sagemaker.deploy(MODERATION, ModerationContainer(moderation_rule))
    pinecone.spaces.clear()
    pinecone.add_index(INDEX, metric="dotproduct", sparse=True)  # what `ragchat ingest` creates
    texts = [d.text for d in FAQ_DOCS]
    pinecone.spaces[""] = {
        doc.id: (vector, {**doc.metadata, "text": doc.text})
        for doc, vector in zip(FAQ_DOCS, embedder.embed(texts), strict=True)
    }
    sparse = Bm25Encoder.fit(texts).encode_documents(texts)
    pinecone.sparse[""] = {
        doc.id: dict(zip(sv.indices, sv.values, strict=True)) for doc, sv in zip(FAQ_DOCS, sparse, strict=True)
    }


def create_deployment(dynamodb: Any, secrets: Any, name: str) -> AwsSettings:
    """The stack's table (its key schema) and secret, and the settings naming them."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "conversation", "KeyType": "HASH"}, {"AttributeName": "turn", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "conversation", "AttributeType": "S"},
            {"AttributeName": "turn", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    secret_arn = secrets.create_secret(Name=f"pinecone-{name}", SecretString=PINECONE_KEY)["ARN"]
    return AwsSettings(
        model_profile="gpt-neoxt-chat",
        chat_endpoint=CHAT,
        embedding_endpoint=EMBEDDING,
        table=name,
        pinecone_secret_arn=secret_arn,
        pinecone_index=INDEX,
        moderation="endpoint",
        moderation_endpoint=MODERATION,
    )


@dataclass
class AwsWorld:
    """Everything one test's deployment consists of, and handles to inspect it."""

    env: dict[str, str]
    settings: AwsSettings
    sagemaker: SageMakerRuntimeStandIn
    pinecone: PineconeStandIn
    comprehend: ComprehendStandIn
    dynamodb: Any
    secrets: Any
    bedrock: BedrockRuntimeStandIn | None = None

    def items(self, session_id: str, owner: str = ANONYMOUS) -> list[dict[str, Any]]:
        """The stored items of `owner`'s session (callers without an IAM identity are
        all `anonymous`, as behind a Function URL with `AuthType: NONE`; no owner: the
        store used directly)."""
        response = self.dynamodb.query(
            TableName=self.settings.table,
            KeyConditionExpression="conversation = :c",
            ExpressionAttributeValues={":c": {"S": conversation_key(owner, session_id)}},
            ConsistentRead=True,
        )
        return response["Items"]

    def lambda_env(self) -> dict[str, str]:
        """The environment the stack gives the function (the same settings contract),
        pointed at the stand-ins."""
        return {**self.env, **self.settings.to_env()}


@contextmanager
def aws_app_client(settings: AwsSettings) -> Iterator[Any]:
    """The Lambda's app on these settings, reached as the Web Adapter does (startup and shutdown run)."""
    from starlette.testclient import TestClient

    from ragchat.aws.server import create_aws_app

    with TestClient(create_aws_app(settings), raise_server_exceptions=False, base_url="http://localhost") as client:
        yield client
