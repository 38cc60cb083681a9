"""The official `openai` client, unchanged, against the app on a real local server."""

import openai
import pytest

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
    assert len(chunks) >= 3  # the role, the reply (one sentence: released once moderated), the finish


def test_openai_client_sees_http_errors(live_server):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}], max_tokens=99999)
    assert raised.value.param == "max_tokens" and "max_tokens: " in str(raised.value)
    with pytest.raises(openai.BadRequestError, match="service_tier: Extra inputs are not permitted"):
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}], service_tier="auto")


def served_usage(engine, reply_words: int = 6) -> tuple[int, int]:
    """The usage the app reports for the last turn: the prompt and the reply in the
    model's tokens (the test double counts words), never a client-side estimate."""
    return engine.generator.count_tokens(engine.generator.prompts[-1].describe()), reply_words


def test_openai_client_lists_the_served_model(live_server):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused-locally")
    assert [m.id for m in client.models.list()] == ["gpt-neoxt-chat"]


def test_openai_client_streams_usage(live_server, engine):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused-locally")
    stream = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": SPOT}], stream=True, stream_options={"include_usage": True}
    )
    *_, last = list(stream)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == served_usage(engine)


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streamed"])
def test_langchain_openai_reports_token_usage(live_server, engine, streaming):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="local", base_url=f"{live_server}/v1", api_key="unused", max_retries=0, stream_usage=True)
    if streaming:
        chunks = list(llm.stream(SPOT))
        message = sum(chunks[1:], chunks[0])
    else:
        message = llm.invoke(SPOT)
    assert message.content == "Spot training works on all instances."
    prompt_tokens, completion_tokens = served_usage(engine)
    assert message.usage_metadata["input_tokens"] == prompt_tokens > 0
    assert message.usage_metadata["output_tokens"] == completion_tokens > 0


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streamed"])
def test_litellm_reports_token_usage(live_server, engine, monkeypatch, streaming):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of its price list
    import litellm

    ask = dict(
        model="openai/local",
        api_base=f"{live_server}/v1",
        api_key="unused",
        messages=[{"role": "user", "content": SPOT}],
        num_retries=0,
    )
    if streaming:
        chunks = list(litellm.completion(**ask, stream=True, stream_options={"include_usage": True}))
        response = litellm.stream_chunk_builder(chunks)
    else:
        response = litellm.completion(**ask)
    assert response.choices[0].message.content == "Spot training works on all instances."
    prompt_tokens, completion_tokens = served_usage(engine)
    assert response.usage.prompt_tokens == prompt_tokens > 0
    assert response.usage.completion_tokens == completion_tokens > 0


def test_openai_client_content_parts(live_server, engine):
    """The client's typed content parts: text is read, an image is refused as BadRequestError."""
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused-locally", max_retries=0)
    text = [{"type": "text", "text": SPOT}]
    completion = client.chat.completions.create(model="local", messages=[{"role": "user", "content": text}])
    assert completion.choices[0].message.content == "Spot training works on all instances."
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": [*text, image]}])
    assert refused.value.param == "messages.0.content.1.type"
