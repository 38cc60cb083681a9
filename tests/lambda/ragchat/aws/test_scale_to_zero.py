"""The Lambda against models served as inference components (`ragchat:scale_to_zero`):
each request names its component, and a component scaled to zero is a 503
`endpoint_not_ready` with Retry-After that says the model is starting and for about how
long, with nothing stored; the CLI says the same."""

from __future__ import annotations

import dataclasses

import pytest
from starlette.testclient import TestClient

from aws_world import CHAT, MODERATION, REPLY, moderation_rule
from standins.sagemaker_runtime import COMPONENT_HEADER, LmiContainer, ModerationContainer

QUESTION = "Which instances can I use with Managed Spot Training?"
CHAT_IC, MODERATION_IC = "chat-ic-2c1b", "moderation-ic-9f0e"


@pytest.fixture
def components(aws_world):
    aws_world.sagemaker.deploy_component(CHAT, CHAT_IC, LmiContainer(REPLY))
    aws_world.sagemaker.deploy_component(MODERATION, MODERATION_IC, ModerationContainer(moderation_rule))
    settings = dataclasses.replace(
        aws_world.settings,
        chat_inference_component=CHAT_IC,
        moderation_inference_component=MODERATION_IC,
        model_start_seconds=600,
    )
    from ragchat.aws.server import create_aws_app

    with TestClient(create_aws_app(settings), raise_server_exceptions=False, base_url="http://localhost") as client:
        yield client


def test_each_request_names_its_inference_component(components, aws_world):
    response = components.post("/chat", json={"inputs": QUESTION})
    assert response.status_code == 200 and response.json()["outputs"] == REPLY
    assert {c.headers[COMPONENT_HEADER] for c in aws_world.sagemaker.calls(CHAT)} == {CHAT_IC}
    assert {c.headers[COMPONENT_HEADER] for c in aws_world.sagemaker.calls(MODERATION)} == {MODERATION_IC}


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_scaled_to_zero_is_503_endpoint_not_ready_saying_it_is_starting(components, aws_world, stream):
    aws_world.sagemaker.scale_component(CHAT, CHAT_IC, copies=0)
    response = components.post("/chat", json={"inputs": QUESTION, "stream": stream, "parameters": {"session_id": "s0"}})
    assert response.status_code == 503 and response.headers["retry-after"] == "60"
    error = response.json()["error"]
    assert error["code"] == "endpoint_not_ready" and error["step"] == "generation"
    assert "scaled to zero while idle and is starting now; it takes about 10 minutes" in error["message"]
    assert aws_world.items("s0") == [], "nothing half-written"


def test_once_a_copy_is_back_the_same_request_is_answered(components, aws_world):
    aws_world.sagemaker.scale_component(MODERATION, MODERATION_IC, copies=0)
    assert components.post("/chat", json={"inputs": QUESTION}).json()["error"]["step"].startswith("moderation")
    aws_world.sagemaker.scale_component(MODERATION, MODERATION_IC, copies=1)
    assert components.post("/chat", json={"inputs": QUESTION}).status_code == 200


def test_without_the_component_setting_the_runtime_refuses_the_request(aws_world):
    """Why the stack passes RAGCHAT_*_INFERENCE_COMPONENT: an endpoint of components
    refuses an unnamed request."""
    from ragchat.aws.server import create_aws_app

    aws_world.sagemaker.deploy_component(CHAT, CHAT_IC, LmiContainer(REPLY))
    with TestClient(
        create_aws_app(aws_world.settings), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        error = client.post("/chat", json={"inputs": QUESTION}).json()["error"]
    assert error["code"] == "model_error" and "Inference Component Name header is required" in error["message"]


def test_the_cli_says_the_model_is_starting(components, aws_world, capsys):
    from conftest import serving
    from ragchat.aws.server import create_aws_app
    from ragchat.cli import main

    settings = dataclasses.replace(aws_world.settings, chat_inference_component=CHAT_IC,
                                   moderation_inference_component=MODERATION_IC)  # fmt: skip
    aws_world.sagemaker.scale_component(CHAT, CHAT_IC, copies=0)
    with serving(create_aws_app(settings)) as url:
        assert main(["ask", QUESTION, "--url", url]) == 2
    err = capsys.readouterr().err
    assert "HTTP 503" in err and "is starting now; it takes about 10 minutes" in err
