"""What the AWS tests share: the names of the stand-in deployment and a handle on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from doubles import BagOfWordsEmbedder
from ragchat.aws.settings import AwsSettings
from standins.comprehend import ComprehendStandIn
from standins.pinecone_server import PineconeStandIn
from standins.sagemaker_runtime import SageMakerRuntimeStandIn

PINECONE_KEY = "pcsk_test_4f1c2a9e7b"  # the stand-in's key; tests assert it never leaks
INDEX = "retrieval-augmentation-aws"
CHAT, EMBEDDING, MODERATION = "chat-endpoint", "embedding-endpoint", "moderation-endpoint"
REPLY = "Managed Spot Training works with all instances supported in Amazon SageMaker."
BLOCKED_WORDS = ("poison", "kill")


def bag_of_words_384() -> BagOfWordsEmbedder:
    embedder = BagOfWordsEmbedder()
    embedder.dimension = 384
    return embedder


def moderation_rule(text: str) -> str:
    return "needs intervention" if any(w in text.lower() for w in BLOCKED_WORDS) else "casual"


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

    def items(self, session_id: str) -> list[dict[str, Any]]:
        response = self.dynamodb.query(
            TableName=self.settings.table,
            KeyConditionExpression="session_id = :s",
            ExpressionAttributeValues={":s": {"S": session_id}},
            ConsistentRead=True,
        )
        return response["Items"]

    def lambda_env(self) -> dict[str, str]:
        """The environment the stack gives the function, pointed at the stand-ins."""
        s = self.settings
        return {
            **self.env,
            "RAGCHAT_MODEL_PROFILE": s.model_profile,
            "RAGCHAT_CHAT_ENDPOINT": s.chat_endpoint,
            "RAGCHAT_EMBEDDING_ENDPOINT": s.embedding_endpoint,
            "RAGCHAT_MODERATION": s.moderation,
            "RAGCHAT_MODERATION_ENDPOINT": s.moderation_endpoint,
            "RAGCHAT_TABLE": s.table,
            "RAGCHAT_PINECONE_SECRET_ARN": s.pinecone_secret_arn,
            "RAGCHAT_PINECONE_INDEX": s.pinecone_index,
            "RAGCHAT_CONVERSATION_TTL_DAYS": str(s.conversation_ttl_days),
        }
