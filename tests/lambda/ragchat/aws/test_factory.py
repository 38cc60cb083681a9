"""The AWS factory's selection points: one registry per port, built by the name the
settings choose, holding exactly the choices the settings contract offers."""

from __future__ import annotations

import dataclasses

import pytest

from aws_world import CHAT, EMBEDDING, MODERATION
from ragchat.aws import factory, settings
from ragchat.aws.bedrock import BedrockGenerator
from ragchat.aws.moderation import ComprehendModerator, GptJtModerator, NoModerator
from ragchat.aws.settings import AwsSettings, ConfigurationError
from ragchat.catalog import CHAT_MODELS

SETTINGS = AwsSettings(
    model_profile="gpt-neoxt-chat",
    embedding_endpoint=EMBEDDING,
    table="t",
    chat_endpoint=CHAT,
    pinecone_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:p-AbCdEf",
    moderation_endpoint=MODERATION,
)


class NoClients:
    sagemaker_fast = sagemaker_generation = dynamodb = secrets = comprehend = object()
    bedrock = object()


def test_each_registry_holds_the_choices_the_settings_offer():
    assert tuple(factory.MODERATORS) == settings.MODERATION_MODES
    assert tuple(factory.VECTOR_INDEXES) == settings.VECTOR_INDEXES
    assert {model.backend for model in CHAT_MODELS.values()} <= set(factory.GENERATORS)


@pytest.mark.parametrize(
    ("mode", "built"), [("endpoint", GptJtModerator), ("comprehend", ComprehendModerator), ("off", NoModerator)]
)
def test_the_moderator_is_the_one_the_settings_name(mode, built):
    chosen = dataclasses.replace(SETTINGS, moderation=mode)
    assert type(factory.build(factory.MODERATORS, "moderation", chosen, NoClients())) is built


def test_the_generator_speaks_the_contract_of_the_models_catalog_entry():
    for model in CHAT_MODELS.values():
        chosen = dataclasses.replace(SETTINGS, model_profile=model.name, bedrock_model_id="eu.amazon.nova-2-lite-v1:0")
        generator = factory.build(factory.GENERATORS, "generator", chosen, NoClients())
        if model.backend == "bedrock":  # Converse: one contract for every Bedrock model
            assert type(generator) is BedrockGenerator and generator.model_id == "eu.amazon.nova-2-lite-v1:0"
            assert generator.client is NoClients.bedrock
        else:
            assert generator.contract is model.contract and generator.endpoint == CHAT


def test_a_kind_without_an_adapter_names_the_choices():
    chosen = dataclasses.replace(SETTINGS, vector_index="chroma")
    with pytest.raises(ConfigurationError, match="vector_index 'chroma' has no adapter; choose one of pinecone"):
        factory.build(factory.VECTOR_INDEXES, "vector_index", chosen, NoClients())


def test_the_vector_index_is_built_as_the_engines_retriever():
    from ragchat.retrieval import HybridRetriever
    from ragchat.wikipedia import WikipediaRetrieval

    pinecone = factory.build(factory.VECTOR_INDEXES, "vector_index", SETTINGS, NoClients())
    assert isinstance(pinecone, HybridRetriever) and pinecone.embedder.endpoint == EMBEDDING
    assert pinecone.lexical_weight == SETTINGS.lexical_weight > 0

    chosen = dataclasses.replace(SETTINGS, vector_index="wikipedia", wikipedia_endpoint="wiki")
    wikipedia = factory.build(factory.VECTOR_INDEXES, "vector_index", chosen, NoClients())
    assert isinstance(wikipedia, WikipediaRetrieval) and wikipedia.endpoint == "wiki"
