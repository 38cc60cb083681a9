"""The official `openai` client, unchanged, against the app on a real local server."""

import openai

SPOT = "Which instances can I use with Managed Spot Training?"


def test_openai_client_buffered(live_server, engine):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused-locally")
    completion = client.chat.completions.create(
        model="local",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is SageMaker?"},
            {"role": "assistant", "content": "A managed ML service."},
            {"role": "user", "content": SPOT},
        ],
        temperature=0.2,
        max_tokens=64,
    )
    assert completion.choices[0].message.content == "Spot training works on all instances."
    assert completion.choices[0].finish_reason == "stop"
    prompt = engine.generator.prompts[0].text
    assert "<human>: What is SageMaker?\n<bot>: A managed ML service." in prompt
    assert engine.generator.params[0].max_new_tokens == 64 and engine.generator.params[0].temperature == 0.2
    assert completion.model_extra["sources"][0]["metadata"]["row"] == 90
    assert engine.store.turns == {}, "the conversation comes from messages; nothing is stored"


def test_openai_client_streaming(live_server):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused-locally")
    stream = client.chat.completions.create(model="local", messages=[{"role": "user", "content": SPOT}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Spot training works on all instances."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(chunks) >= 4


def test_openai_client_sees_http_errors(live_server):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="x", max_retries=0)
    try:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}], max_tokens=99999)
    except openai.UnprocessableEntityError as exc:
        assert exc.response.json()["error"]["field"] == "max_tokens"
    else:
        raise AssertionError("expected a 422")
