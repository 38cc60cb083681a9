"""Sessions belong to their caller on AWS: the IAM identity the Function URL verified
(passed on by the Web Adapter) scopes every stored conversation."""

from __future__ import annotations

import json

import pytest

from aws_world import CHAT
from ragchat.aws.identity import ANONYMOUS, caller_identity

ALICE = "arn:aws:iam::111122223333:user/alice"
MALLORY = "arn:aws:iam::111122223333:user/mallory"
QUESTION = "Which instances can I use with Managed Spot Training?"


def as_caller(arn: str) -> dict[str, str]:
    """The header the Web Adapter sends for a request signed by `arn`."""
    iam = {"accountId": arn.split(":")[4], "userArn": arn, "userId": "AIDAEXAMPLE", "accessKey": "AKIAEXAMPLE"}
    return {"x-amzn-request-context": json.dumps({"authorizer": {"iam": iam}, "domainName": "abc.on.aws"})}


@pytest.mark.parametrize(
    ("context", "owner"),
    [
        ({"authorizer": {"iam": {"userArn": ALICE}}}, ALICE),
        # the session name after the role is the assuming caller's choice: it separates nobody
        (
            {"authorizer": {"iam": {"userArn": "arn:aws:sts::111122223333:assumed-role/Dev/alice@example.com"}}},
            "arn:aws:sts::111122223333:assumed-role/Dev",
        ),
        (
            {"authorizer": {"iam": {"userArn": "arn:aws-cn:sts::111122223333:assumed-role/Dev/i-0abc"}}},
            "arn:aws-cn:sts::111122223333:assumed-role/Dev",
        ),
        # GetFederationToken's caller names the federated user: bob could call himself alice
        (
            {"authorizer": {"iam": {"userArn": "arn:aws:sts::111122223333:federated-user/alice"}}},
            "arn:aws:sts::111122223333:federated-user",
        ),
        ({"requestId": "r"}, ANONYMOUS),  # AuthType NONE: no authorizer
        ({"authorizer": {"iam": None}}, ANONYMOUS),
        ("not json", ANONYMOUS),
        (None, ANONYMOUS),
    ],
)
def test_the_owner_is_the_iam_caller_without_the_role_session_name(context, owner):
    headers = (
        {}
        if context is None
        else {"x-amzn-request-context": context if isinstance(context, str) else json.dumps(context)}
    )
    assert caller_identity(headers) == owner


def test_a_caller_cannot_read_or_extend_another_callers_session(aws_client, aws_world):
    def ask(caller: str, text: str, session_id: str | None = None) -> dict:
        parameters = {"no_retrieval": True, **({"session_id": session_id} if session_id else {})}
        response = aws_client.post("/chat", json={"inputs": text, "parameters": parameters}, headers=as_caller(caller))
        assert response.status_code == 200
        return response.json()

    session = ask(ALICE, QUESTION)["session_id"]
    ask(MALLORY, "What did I ask you before?", session)  # Mallory knows (or guessed) Alice's id
    mallory_prompt = aws_world.sagemaker.calls(CHAT)[-1].json()["inputs"]
    ask(ALICE, "And what does it cost?", session)
    alice_prompt = aws_world.sagemaker.calls(CHAT)[-1].json()["inputs"]

    assert QUESTION not in mallory_prompt  # Alice's history did not reach Mallory
    assert QUESTION in alice_prompt and "What did I ask you before?" not in alice_prompt
    assert len(aws_world.items(session, owner=ALICE)) == 4
    assert len(aws_world.items(session, owner=MALLORY)) == 2
