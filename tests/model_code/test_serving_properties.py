"""The LMI configurations parse and hold what the endpoints need: tensor parallel degree,
dtype, continuous batching, streaming output, the model source, sizes that fit the GPUs."""

from __future__ import annotations

import json
import re
import sys
import tarfile

import pytest

from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT))
from ragchat.catalog import chat_model
from stacks.bundling import ModelArchiveBundling, apply_overrides

MODEL_CODE = PROJECT_ROOT / "model_code"
GIB = 1024**3
A10G_BYTES = 22.5 * GIB  # what an A10G reports as total memory (24 GB nominal)


def parse_properties(text: str) -> dict[str, str]:
    """DJL Serving's serving.properties: `key=value` lines, `#` comments; a duplicate
    key is a mistake (the last one would silently win)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: {raw!r} is not key=value"
        assert key.strip() not in values, f"line {number}: {key.strip()} set twice"
        values[key.strip()] = value.strip()
    return values


def properties(folder: str) -> dict[str, str]:
    return parse_properties((MODEL_CODE / folder / "serving.properties").read_text())


def fp16_weight_bytes(parameters_billions: float) -> float:
    return parameters_billions * 1e9 * 2


def test_chat_llm_is_lmi_dist_tensor_parallel_4_fp16_streaming():
    chat = properties("chat_llm")
    assert chat["engine"] == "Python"
    assert chat["option.model_id"] == "togethercomputer/GPT-NeoXT-Chat-Base-20B"
    assert chat["option.tensor_parallel_degree"] == "4"
    assert chat["option.dtype"] == "fp16"
    assert chat["option.rolling_batch"] == "lmi-dist"
    assert chat["option.output_formatter"] == "jsonlines"
    assert int(chat["option.model_loading_timeout"]) >= 1800


def test_chat_llm_sizes_fit_four_a10g():
    chat = properties("chat_llm")
    # GPT-NeoX-20B: 2048 positions; the weights split over 4 x 24 GB leave room for the KV cache.
    assert int(chat["option.max_model_len"]) <= 2048
    per_gpu = fp16_weight_bytes(20.6) / int(chat["option.tensor_parallel_degree"])
    assert per_gpu < 0.5 * 24 * GIB
    # KV cache of a full batch at full length: 2 (k, v) x 44 layers x 6144 hidden x 2 bytes per token.
    kv_bytes = 2 * 44 * 6144 * 2 * int(chat["option.max_model_len"]) * int(chat["option.max_rolling_batch_size"])
    assert kv_bytes / 4 + per_gpu < 0.95 * 24 * GIB


def test_moderation_llm_fits_one_gpu():
    moderation = properties("moderation_llm")
    assert moderation["option.model_id"] == "togethercomputer/GPT-JT-Moderation-6B"
    assert moderation["option.tensor_parallel_degree"] == "1"
    assert moderation["option.dtype"] == "fp16"
    assert moderation["option.rolling_batch"] == "lmi-dist"
    assert fp16_weight_bytes(6.05) < 0.6 * 24 * GIB


def test_the_open_chat_model_fits_one_a10g_in_bf16():
    """Qwen2.5-7B-Instruct on ml.g5.2xlarge: 7.6 B parameters in bf16, and the KV cache of
    eight full-length sequences (28 layers, 4 KV heads of 128 dimensions, keys and values,
    2 bytes), within vLLM's default 90% of one 24 GB A10G."""
    model = chat_model("qwen2.5-7b-instruct")
    env = model.serving.environment
    assert (env["TENSOR_PARALLEL_DEGREE"], env["OPTION_DTYPE"], env["OPTION_ROLLING_BATCH"]) == ("1", "bf16", "vllm")
    assert re.fullmatch(r"[0-9a-f]{40}", env["OPTION_REVISION"]), "the weights are pinned to a hub commit"
    max_model_len = int(env["OPTION_MAX_MODEL_LEN"])
    assert max_model_len == model.profile.context_window <= 32768  # the model's own context
    weights = fp16_weight_bytes(7.62)
    kv_cache = 8 * max_model_len * (2 * 28 * 4 * 128 * 2)
    assert weights + kv_cache < 0.9 * A10G_BYTES
    assert model.serving.instance_type == "ml.g5.2xlarge"  # one A10G, 32 GiB of host memory for loading


def test_weights_from_s3_replace_the_hub_id_and_keep_everything_else():
    original = (MODEL_CODE / "chat_llm" / "serving.properties").read_text()
    rewritten = parse_properties(apply_overrides(original, {"option.model_id": "s3://my-bucket/gpt-neoxt/"}))
    assert rewritten == properties("chat_llm") | {"option.model_id": "s3://my-bucket/gpt-neoxt/"}


def test_the_archive_carries_the_rewritten_properties(tmp_path):
    bundling = ModelArchiveBundling(MODEL_CODE / "chat_llm", {"option.model_id": "s3://my-bucket/neoxt/"})
    assert bundling.try_bundle(str(tmp_path), None)
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        assert archive.getnames() == ["serving.properties"]
        text = archive.extractfile("serving.properties").read().decode()
    assert parse_properties(text)["option.model_id"] == "s3://my-bucket/neoxt/"


@pytest.mark.parametrize("text", ["option.dtype=fp16\noption.dtype=bf16\n", "option.dtype fp16\n"])
def test_the_parser_rejects_duplicates_and_malformed_lines(text):
    with pytest.raises(AssertionError):
        parse_properties(text)


def test_generation_parameters_the_lambda_sends_are_ones_lmi_honours(readme_examples):
    """LMI 0.31's rolling-batch GenerationParameters (lmi_input_output_schema.md)."""
    documented = {
        "do_sample", "seed", "temperature", "repetition_penalty", "top_k", "top_p", "max_new_tokens",
        "details", "return_full_text", "stop_sequences", "decoder_input_details",
    }  # fmt: skip
    for name in ("lmi-request", "lmi-stream-request", "moderation-request"):
        sent = json.loads(readme_examples[name])
        assert set(sent["parameters"]) <= documented, name
        assert set(sent) <= {"inputs", "parameters", "stream"}, name


def test_chat_completions_fields_the_lambda_sends_are_ones_lmi_reads(readme_examples):
    """LMI's ChatProperties (chat_input_output_schema.md): fields it does not know, such as
    top_k, would be dropped silently, so the Lambda sends none."""
    documented = {
        "messages", "model", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens", "n",
        "presence_penalty", "seed", "stop", "stream", "temperature", "top_p", "user", "ignore_eos",
    }  # fmt: skip
    for name in ("qwen-request", "qwen-stream-request"):
        sent = json.loads(readme_examples[name])
        assert set(sent) <= documented and "inputs" not in sent, name
        assert all(set(m) == {"role", "content"} for m in sent["messages"]), name
