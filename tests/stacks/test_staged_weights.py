"""Staged weights (`chat_model_s3_uri`, `moderation_model_s3_uri`): SageMaker copies the
prefix to /opt/ml/model, the LLMs run with network isolation (checkov CKV_AWS_370), the
LMI configuration travels as the documented environment variables, and hub mode pins a
revision when one is given."""

import json
import re
import tarfile

import pytest

from cdk_helpers import ROOT, STAGED_WEIGHTS, cfn_lint_errors, resources, synth, synth_once
from stacks.weights import lmi_environment, read_properties

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def staged():
    return synth_once(**STAGED_WEIGHTS)


def model_of(template: dict, construct: str) -> dict:
    (model,) = [m for k, m in resources(template, "AWS::SageMaker::Model").items() if k.startswith(construct)]
    return model


@pytest.mark.parametrize(("construct", "prefix"), [("ChatLlm", "staged/neoxt/"), ("ModerationLlm", "staged/jt/")])
def test_both_llms_run_isolated_from_their_staged_prefix(staged, construct, prefix):
    template, _ = staged
    model = model_of(template, construct)
    assert model["EnableNetworkIsolation"] is True
    container = model["PrimaryContainer"]
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": f"s3://my-bucket/{prefix}", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert "ModelDataUrl" not in container, "no archive: the configuration is in the environment"
    environment = container["Environment"]
    assert environment["OPTION_MODEL_ID"] == "/opt/ml/model"
    assert environment["SERVING_LOAD_MODELS"] == "test::Python=/opt/ml/model"
    assert "togethercomputer" not in json.dumps(environment), "no hub id: nothing to download"


def test_the_environment_carries_every_setting_of_serving_properties():
    properties = read_properties(ROOT / "model_code" / "chat_llm" / "serving.properties")
    environment = lmi_environment(properties)
    assert environment["OPTION_TENSOR_PARALLEL_DEGREE"] == "4" and environment["OPTION_DTYPE"] == "fp16"
    assert environment["OPTION_ROLLING_BATCH"] == "lmi-dist" and environment["OPTION_OUTPUT_FORMATTER"] == "jsonlines"
    # every option but the hub pin, which a staged copy has no use for
    options = {k for k in properties if k.startswith("option.")} - {"option.revision"}
    assert "option.revision" in properties and "OPTION_REVISION" not in environment
    assert {k for k in environment if k.startswith("OPTION_")} == {"OPTION_" + o[7:].upper() for o in options}
    assert lmi_environment({"engine": "Python", "batch_size": "4", "option.revision": SHA}) == {
        "SERVING_LOAD_MODELS": "test::Python=/opt/ml/model",
        "SERVING_BATCH_SIZE": "4",
        "OPTION_MODEL_ID": "/opt/ml/model",
    }


def test_staged_flan_t5_loads_the_local_copy_in_isolation():
    template, _ = synth(chat_model="flan-t5", chat_model_s3_uri="s3://my-bucket/flan/")
    model = model_of(template, "ChatLlm")
    assert model["EnableNetworkIsolation"] is True
    assert model["PrimaryContainer"]["Environment"]["HF_MODEL_ID"] == "/opt/ml/model"


def test_staged_qwen_loads_the_local_copy_without_its_hub_pin():
    """The catalog's Qwen entry pins a hub commit; staged, the container reads only /opt/ml/model."""
    template, _ = synth(
        chat_model="qwen2.5-7b-instruct", moderation="comprehend", chat_model_s3_uri="s3://my-bucket/qwen/"
    )
    model = model_of(template, "ChatLlm")
    environment = model["PrimaryContainer"]["Environment"]
    assert model["EnableNetworkIsolation"] is True
    assert environment["HF_MODEL_ID"] == "/opt/ml/model" and "OPTION_REVISION" not in environment
    assert environment["OPTION_ROLLING_BATCH"] == "vllm"
    assert model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] == "s3://my-bucket/qwen/"


@pytest.mark.parametrize("folder", ["chat_llm", "moderation_llm"])
def test_hub_mode_loads_a_pinned_revision_by_default(tmp_path, folder):
    from stacks.bundling import ModelArchiveBundling
    from stacks.chat_stack import MODEL_CODE

    assert ModelArchiveBundling(MODEL_CODE / folder, None).try_bundle(str(tmp_path), None)
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        (member,) = [m for m in archive.getmembers() if m.name.endswith("serving.properties")]
        (tmp_path / "serving.properties").write_bytes(archive.extractfile(member).read())
    properties = read_properties(tmp_path / "serving.properties")
    assert re.fullmatch(r"[0-9a-f]{40}", properties["option.revision"]), "a commit id, not a branch"


def test_hub_mode_pins_the_revision_given(tmp_path):
    from stacks.bundling import ModelArchiveBundling
    from stacks.chat_stack import MODEL_CODE

    assert ModelArchiveBundling(MODEL_CODE / "moderation_llm", {"option.revision": SHA}).try_bundle(str(tmp_path), None)
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        (member,) = [m for m in archive.getmembers() if m.name.endswith("serving.properties")]
        properties = archive.extractfile(member).read().decode()
    assert [line for line in properties.splitlines() if line.startswith("option.revision")] == [
        f"option.revision={SHA}"
    ], "the setting replaces the default pin"
    template, _ = synth(chat_model="flan-t5", chat_model_revision=SHA)
    assert model_of(template, "ChatLlm")["PrimaryContainer"]["Environment"]["REVISION"] == SHA


def test_staged_weights_are_cdk_nag_and_cfn_lint_clean(staged):
    _, outdir = staged
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output
