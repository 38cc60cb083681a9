"""The day-two options combined with each other and with the other choices: every such
configuration synthesizes with cdk-nag clean (synth raises otherwise) and cfn-lint clean."""

from __future__ import annotations

import pytest

from cdk_helpers import cfn_lint_errors, resources, synth

STAGED = {"chat_model_s3_uri": "s3://my-bucket/neoxt/", "moderation_model_s3_uri": "s3://my-bucket/gptjt/"}
WIKIPEDIA = {"knowledge_base": "wikipedia", "wikipedia_s3_uri": "s3://my-bucket/wikipedia/"}
COMBINATIONS = [
    {"scale_to_zero": True, **STAGED},
    {"scale_to_zero": True, **WIKIPEDIA},
    {"scale_to_zero": True, "chat_model": "llama-2-chat", "accept_llama2_eula": True},
    {"parked": True, "scale_to_zero": True, **STAGED},
    {"chat_max_instances": 3, "embedding_max_instances": 2, "alarm_email": "ops@example.com", **STAGED},
    {"chat_model": "qwen2.5-7b-instruct", "scale_to_zero": True, "moderation": "off"},
]


@pytest.mark.parametrize("settings", COMBINATIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_the_combination_is_cdk_nag_and_cfn_lint_clean(settings):
    template, outdir = synth(**settings)  # cdk-nag: raises on any unacknowledged finding
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output
    endpoints = resources(template, "AWS::SageMaker::Endpoint")
    assert (endpoints == {}) == settings.get("parked", False), "parked removes every endpoint, and only parked"
