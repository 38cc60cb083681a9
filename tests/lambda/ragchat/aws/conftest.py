"""The AWS world, locally: moto server (DynamoDB, Secrets Manager), and stand-ins for the
SageMaker runtime, Pinecone and Comprehend. boto3 and the `pinecone` SDK reach them
through their documented endpoint settings (`AWS_ENDPOINT_URL_<SERVICE>`,
`PINECONE_CONTROLLER_HOST`); nothing is patched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from aws_world import (
    BLOCKED_WORDS,
    CHAT,
    EMBEDDING,
    INDEX,
    MODERATION,
    PINECONE_KEY,
    REPLY,
    AwsWorld,
    bag_of_words_384,
    moderation_rule,
)
from conftest import free_port
from doubles import FAQ_DOCS
from ragchat.aws.settings import AwsSettings
from standins.comprehend import ComprehendStandIn
from standins.pinecone_server import PineconeStandIn
from standins.sagemaker_runtime import (
    EmbeddingContainer,
    LmiContainer,
    ModerationContainer,
    SageMakerRuntimeStandIn,
)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def sagemaker_server() -> Iterator[SageMakerRuntimeStandIn]:
    server = SageMakerRuntimeStandIn()
    yield server
    server.close()


@pytest.fixture(scope="session")
def pinecone_server() -> Iterator[PineconeStandIn]:
    server = PineconeStandIn(api_key=PINECONE_KEY)
    yield server
    server.close()


@pytest.fixture(scope="session")
def comprehend_server() -> Iterator[ComprehendStandIn]:
    server = ComprehendStandIn(lambda text: 0.93 if any(w in text.lower() for w in BLOCKED_WORDS) else 0.02)
    yield server
    server.close()


@pytest.fixture
def aws_env(monkeypatch, moto_url, sagemaker_server, pinecone_server, comprehend_server) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_server.url,
        "AWS_ENDPOINT_URL_COMPREHEND": comprehend_server.url,
        "PINECONE_CONTROLLER_HOST": pinecone_server.url,
        "POWERTOOLS_METRICS_NAMESPACE": "RagChatTest",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def aws_world(aws_env, sagemaker_server, pinecone_server, comprehend_server) -> Iterator[AwsWorld]:
    sagemaker_server.reset()
    pinecone_server.reset()
    comprehend_server.reset()
    embedder = bag_of_words_384()
    sagemaker_server.deploy(CHAT, LmiContainer(REPLY))
    sagemaker_server.deploy(EMBEDDING, EmbeddingContainer(embedder.embed))
    sagemaker_server.deploy(MODERATION, ModerationContainer(moderation_rule))
    pinecone_server.spaces.clear()
    pinecone_server.add_index(INDEX)
    pinecone_server.spaces[""] = {
        doc.id: (vector, {**doc.metadata, "text": doc.text})
        for doc, vector in zip(FAQ_DOCS, embedder.embed([d.text for d in FAQ_DOCS]), strict=True)
    }
    pinecone_server.reset()  # forget the set-up requests

    dynamodb = boto3.client("dynamodb")
    secrets = boto3.client("secretsmanager")
    table = f"conversations-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "session_id", "KeyType": "HASH"}, {"AttributeName": "turn", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "session_id", "AttributeType": "S"},
            {"AttributeName": "turn", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    secret_arn = secrets.create_secret(Name=f"pinecone-{uuid.uuid4().hex[:8]}", SecretString=PINECONE_KEY)["ARN"]
    settings = AwsSettings(
        model_profile="gpt-neoxt-chat",
        chat_endpoint=CHAT,
        embedding_endpoint=EMBEDDING,
        table=table,
        pinecone_secret_arn=secret_arn,
        pinecone_index=INDEX,
        moderation="endpoint",
        moderation_endpoint=MODERATION,
    )
    yield AwsWorld(aws_env, settings, sagemaker_server, pinecone_server, comprehend_server, dynamodb, secrets)


@pytest.fixture
def aws_client(aws_world: AwsWorld):
    from starlette.testclient import TestClient

    from ragchat.aws.server import create_aws_app

    with TestClient(create_aws_app(aws_world.settings), raise_server_exceptions=False) as client:
        yield client
