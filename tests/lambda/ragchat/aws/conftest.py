"""The AWS world, locally: moto server (DynamoDB, Secrets Manager), and stand-ins for the
SageMaker runtime, Pinecone and Comprehend. boto3 and the `pinecone` SDK reach them
through their documented endpoint settings (`AWS_ENDPOINT_URL_<SERVICE>`,
`PINECONE_CONTROLLER_HOST`); nothing is patched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from aws_world import BLOCKED_WORDS, PINECONE_KEY, AwsWorld, aws_app_client, create_deployment, deploy_stand_ins
from standins.bedrock_runtime import BedrockRuntimeStandIn
from standins.comprehend import ComprehendStandIn
from standins.pinecone_server import PineconeStandIn
from standins.sagemaker_runtime import SageMakerRuntimeStandIn


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


@pytest.fixture(scope="session")
def bedrock_server() -> Iterator[BedrockRuntimeStandIn]:
    server = BedrockRuntimeStandIn()
    yield server
    server.close()


@pytest.fixture
def aws_env(
    monkeypatch, moto_url, sagemaker_server, pinecone_server, comprehend_server, bedrock_server
) -> dict[str, str]:
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
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_server.url,
        "PINECONE_CONTROLLER_HOST": pinecone_server.url,
        "POWERTOOLS_METRICS_NAMESPACE": "RagChatTest",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def aws_world(aws_env, sagemaker_server, pinecone_server, comprehend_server, bedrock_server) -> Iterator[AwsWorld]:
    sagemaker_server.reset()
    pinecone_server.reset()
    comprehend_server.reset()
    bedrock_server.reset()
    deploy_stand_ins(sagemaker_server, pinecone_server)
    pinecone_server.reset()  # forget the set-up requests
    dynamodb = boto3.client("dynamodb")
    secrets = boto3.client("secretsmanager")
    settings = create_deployment(dynamodb, secrets, f"conversations-{uuid.uuid4().hex[:8]}")
    yield AwsWorld(
        aws_env, settings, sagemaker_server, pinecone_server, comprehend_server, dynamodb, secrets, bedrock_server
    )


@pytest.fixture
def aws_client(aws_world: AwsWorld):
    with aws_app_client(aws_world.settings) as client:
        yield client
