"""cdk-nag runs inside the tests: an unacknowledged finding fails synth, and every
acknowledgement names one rule and gives its reason."""

import pytest

from cdk_helpers import synth
from stacks import nag

SETTINGS = [
    {},
    {"moderation": "comprehend"},
    {"chat_model_s3_uri": "s3://my-bucket/neoxt"},
    {"chat_model": "llama-2-chat", "accept_llama2_eula": True},
    {"chat_model": "bedrock", "moderation": "comprehend"},
    {"pinecone_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pinecone-AbCdEf"},
]


def test_an_unacknowledged_finding_fails_synth(monkeypatch):
    acknowledge = nag._ack

    def all_but_the_secret_rotation(scope, rule, reason):
        if rule != "AwsSolutions-SMG4":
            acknowledge(scope, rule, reason)

    monkeypatch.setattr(nag, "_ack", all_but_the_secret_rotation)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth()


@pytest.mark.parametrize("settings", SETTINGS)
def test_every_acknowledgement_names_one_rule_with_a_reason(monkeypatch, settings):
    acknowledged: list[tuple[str, str]] = []
    acknowledge = nag._ack

    def recording(scope, rule, reason):
        acknowledged.append((rule, reason))
        acknowledge(scope, rule, reason)

    monkeypatch.setattr(nag, "_ack", recording)
    synth(**settings)  # raises on any finding left unacknowledged
    assert acknowledged
    for rule, reason in acknowledged:
        assert rule.startswith("AwsSolutions-") and "*" not in rule.split("[", 1)[0], rule
        assert len(reason.split()) >= 5, f"{rule}: the reason says too little: {reason!r}"
