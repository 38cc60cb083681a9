"""The Lambda with `RAGCHAT_VECTOR_INDEX=wikipedia`: its vector-index adapter, chosen through
the factory's selection point, calls the retrieval endpoint, here a SageMaker-runtime
stand-in running the retrieval image's own handler on a small index in the dataset's format
(MiniLM through transformers, as contriever runs in the image)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from starlette.testclient import TestClient

from aws_world import EMBEDDING
from ragchat.aws.server import create_aws_app
from ragchat.aws.settings import AwsSettings, ConfigurationError
from ragchat.engine import RETRIEVAL_WARNING
from ragchat.ingest.sources import SourceText
from ragchat.local.wikipedia import build_index, load_handler
from standins.sagemaker_runtime import WikipediaRetrievalContainer

ENDPOINT = "wikipedia-endpoint"
ARTICLES = {
    "Apollo 17": "Apollo 17 was the final mission of NASA's Apollo program. It launched in December 1972. Eugene "
    "Cernan was the last person to walk on the Moon. He re-entered the lunar module on December 14.",
    "Sourdough": "Sourdough is bread made with wild yeast. It tastes mildly sour. Bakers keep a starter alive by "
    "feeding it flour and water.",
}


@pytest.fixture(scope="module")
def container(tmp_path_factory, minilm_encoder):
    folder = tmp_path_factory.mktemp("wiki")
    build_index([SourceText("wiki.jsonl", text, {"title": t}) for t, text in ARTICLES.items()], folder,
                encoder=minilm_encoder)  # fmt: skip
    handler = load_handler()
    return WikipediaRetrievalContainer(handler, handler.WikipediaRetriever(folder, encoder=minilm_encoder))


@pytest.fixture
def wiki_settings(aws_world, container):
    aws_world.sagemaker.deploy(ENDPOINT, container)
    return dataclasses.replace(
        aws_world.settings, vector_index="wikipedia", wikipedia_endpoint=ENDPOINT, embedding_endpoint="",
        pinecone_secret_arn="", pinecone_index="",
    )  # fmt: skip


def test_sources_come_from_the_retrieval_endpoint_with_titles_and_snippet_ids(aws_world, wiki_settings):
    with TestClient(
        create_aws_app(wiki_settings), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        body = client.post("/chat", json={"inputs": "Who was the last man to walk on the Moon?"}).json()

    top = body["sources"][0]
    assert top["metadata"] == {"source": "wikipedia", "title": "Apollo 17", "row": top["metadata"]["row"],
                               "snippets": top["metadata"]["snippets"]}  # fmt: skip
    assert top["id"] == f"wikipedia:{top['metadata']['row']}" and "Eugene Cernan" in top["text"]
    assert body["warnings"] == []
    (call,) = aws_world.sagemaker.calls(ENDPOINT)
    assert json.loads(call.body) == {
        "inputs": "Who was the last man to walk on the Moon?",
        "parameters": {"k": wiki_settings.retrieval_top_k, "window": 5, "threshold": 0.5},
    }
    assert aws_world.sagemaker.calls(EMBEDDING) == [] and aws_world.pinecone.requests == []
    prompt = json.loads(aws_world.sagemaker.calls("chat-endpoint")[0].body)["inputs"]
    assert "Eugene Cernan was the last person to walk on the Moon" in prompt


def test_a_question_longer_than_the_endpoint_takes_is_looked_up_by_its_start(aws_world, wiki_settings):
    """The endpoint refuses inputs over 4,096 characters; a 4,541-character question (the chat
    allows 8,000) lost its context with a `retrieval unavailable` warning."""
    question = "Who was the last man to walk on the Moon? " + "Please answer with details. " * 160
    with TestClient(create_aws_app(wiki_settings), base_url="http://localhost") as client:
        body = client.post("/chat", json={"inputs": question, "parameters": {"no_retrieval": False}}).json()
    assert body["warnings"] == [] and body["sources"][0]["metadata"]["title"] == "Apollo 17"
    (call,) = aws_world.sagemaker.calls(ENDPOINT)
    assert len(question) > 4096 and call.json()["inputs"] == question[:4096]


def test_a_failing_retrieval_endpoint_costs_the_context_not_the_answer(aws_world, wiki_settings, caplog):
    aws_world.sagemaker.fail(ENDPOINT, 424, "ModelError", "Received server error (500) from primary", times=3)
    with TestClient(
        create_aws_app(wiki_settings), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        response = client.post("/chat", json={"inputs": "Who was the last man to walk on the Moon?"})

    body = response.json()
    assert response.status_code == 200 and body["sources"] == [] and body["outputs"]
    assert body["warnings"] == [RETRIEVAL_WARNING], "the caller hears that retrieval failed, not why"
    assert any("Wikipedia retrieval failed" in r.getMessage() for r in caplog.records)


def test_the_handlers_400_reaches_the_adapter_as_a_model_error(aws_world, container):
    import boto3

    from ragchat.aws.sagemaker import SageMakerRuntime
    from ragchat.errors import UpstreamModelError

    aws_world.sagemaker.deploy(ENDPOINT, container)
    runtime = SageMakerRuntime(boto3.client("sagemaker-runtime"))
    with pytest.raises(UpstreamModelError, match="parameters.k"):
        runtime.invoke(ENDPOINT, {"inputs": "x", "parameters": {"k": 500}}, step="retrieval")


def test_the_settings_contract_asks_for_the_wikipedia_endpoint_only():
    env = {"RAGCHAT_MODEL_PROFILE": "gpt-neoxt-chat", "RAGCHAT_TABLE": "t", "RAGCHAT_CHAT_ENDPOINT": "chat",
           "RAGCHAT_MODERATION": "off", "RAGCHAT_VECTOR_INDEX": "wikipedia"}  # fmt: skip
    with pytest.raises(ConfigurationError, match="RAGCHAT_WIKIPEDIA_ENDPOINT"):
        AwsSettings.from_env(env)
    loaded = AwsSettings.from_env({**env, "RAGCHAT_WIKIPEDIA_ENDPOINT": ENDPOINT})
    assert (loaded.vector_index, loaded.wikipedia_endpoint, loaded.pinecone_secret_arn) == ("wikipedia", ENDPOINT, "")
    with pytest.raises(ConfigurationError, match="RAGCHAT_EMBEDDING_ENDPOINT, RAGCHAT_PINECONE_SECRET_ARN"):
        AwsSettings.from_env({**env, "RAGCHAT_VECTOR_INDEX": "pinecone"})
