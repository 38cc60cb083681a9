"""The OpenAI-compatible route, over HTTP on the test doubles."""

import json

import pytest

QUESTION = [{"role": "user", "content": "Which instances can I use with Managed Spot Training?"}]


def post(client, body, **headers):
    return client.post(
        "/v1/chat/completions", content=json.dumps(body), headers={"Content-Type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    "stop",
    [[f"stop-{i}" for i in range(5000)], ["a", "b", "c", "d", "e"], "x" * 65, ["ok", "y" * 65]],
    ids=["5000-strings", "5-strings", "long-string", "long-in-list"],
)
def test_stop_is_bounded_before_anything_reaches_the_model(client, engine, stop):
    r = post(client, {"messages": QUESTION, "stop": stop})
    assert r.status_code == 422 and r.json()["error"]["field"] == "stop"
    assert engine.generator.prompts == [], "the model was never asked"


def test_four_stop_sequences_reach_the_model(client, engine):
    stop = ["</answer>", "\n\n", "Q:", "x" * 64]
    r = post(client, {"messages": QUESTION, "stop": stop})
    assert r.status_code == 200
    assert engine.generator.params[0].stop[-4:] == tuple(stop)
