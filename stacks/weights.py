"""Weights staged in your own S3 prefix (by `model_code/upload_weights.py`), served with
network isolation.

With network isolation the container has no network at all, so it cannot download from the
hub or from S3 itself. SageMaker copies the prefix to /opt/ml/model before the container
starts (`ModelDataSource`, uncompressed `S3Prefix`), with the execution role, which may read
that prefix only. The LMI configuration then travels as environment variables, translated
from the model's `serving.properties` by LMI's documented rules (djl-serving
`lmi_environment_variable_instruction.md`): `engine=X` becomes
`SERVING_LOAD_MODELS=test::X=/opt/ml/model`, `option.name=v` becomes `OPTION_NAME=v`, any
other key `k=v` becomes `SERVING_K=v`; the model id points at the staged copy."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_sagemaker as sagemaker

MODEL_DIR = "/opt/ml/model"


def read_properties(path: Path) -> dict[str, str]:
    """`key=value` lines of a serving.properties file, comments and blanks skipped."""
    properties: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


def lmi_environment(properties: dict[str, str]) -> dict[str, str]:
    """The environment variables equivalent to `properties`, serving the weights that
    SageMaker copied to /opt/ml/model (never a hub id or revision)."""
    environment: dict[str, str] = {}
    for key, value in properties.items():
        if key == "engine":
            environment["SERVING_LOAD_MODELS"] = f"test::{value}={MODEL_DIR}"
        elif key.startswith("option."):
            environment["OPTION_" + key.removeprefix("option.").upper()] = value
        else:
            environment["SERVING_" + key.upper()] = value
    environment["OPTION_MODEL_ID"] = MODEL_DIR
    environment.pop("OPTION_REVISION", None)
    return environment


def staged_weights(uri: str) -> sagemaker.CfnModel.ModelDataSourceProperty:
    """SageMaker copies every object under the prefix to /opt/ml/model, uncompressed."""
    return sagemaker.CfnModel.ModelDataSourceProperty(
        s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
            s3_uri=uri.rstrip("/") + "/", s3_data_type="S3Prefix", compression_type="None"
        )
    )


def weights_pattern(uri: str) -> tuple[str, str]:
    """(bucket, object-key pattern) of the objects under an s3://bucket/prefix URI."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/")
    return bucket, f"{prefix}/*" if prefix else "*"


def hub_mode_reason(model: str, setting: str) -> str:
    """Why a hub-mode model runs without network isolation, and the fix: the template's
    checkov skip of CKV_AWS_370 carries this text."""
    return (
        f"Hub mode: the container downloads {model} from the Hugging Face hub when it starts, so it needs "
        "the network. Stage the weights with model_code/upload_weights.py and deploy with "
        f"-c ragchat:{setting}=s3://...: the model then runs with network isolation."
    )
