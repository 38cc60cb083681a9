"""stage_wikipedia.py: the dataset and the encoder from the hub (a stand-in speaking its
model and dataset API), into one S3 prefix (moto server) the endpoint reads as /opt/ml/model;
sizes shown first, resumable, failures explained."""

from __future__ import annotations

import json

import boto3
import pytest

from conftest import PROJECT_ROOT, load_module
from standins.hf_hub import HubStandIn

BUCKET = "wiki-bucket"
script = load_module(PROJECT_ROOT / "model_code" / "stage_wikipedia.py", "stage_wikipedia")


@pytest.fixture
def hub(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "knn.index").write_bytes(b"\x01" * 300_000)
    (dataset / "wikipedia-en-sentences.parquet").write_bytes(b"\x02" * 200_000)
    (dataset / "wikiindexquery.py").write_text("print('not staged')")
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text('{"model_type": "bert", "hidden_size": 768}')
    (encoder / "tokenizer.json").write_text("{}")
    (encoder / "pytorch_model.bin").write_bytes(b"\x03" * 100_000)
    server = HubStandIn(script.DATASET, dataset, repo_type="dataset")
    server.add_repo(script.ENCODER, encoder)
    yield server
    server.close()


@pytest.fixture
def s3(moto_url, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_url)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def run(args, s3, capsys):
    code = script.main(args, s3_factory=lambda: s3)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dataset_and_encoder_land_in_one_prefix_with_their_settings(hub, s3, tmp_path, capsys):
    args = [f"s3://{BUCKET}/wiki/", "--cache-dir", str(tmp_path / "stage"), "--hub-endpoint", hub.url]
    code, out, err = run(args, s3, capsys)

    assert code == 0, err
    keys = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    config = json.loads(s3.get_object(Bucket=BUCKET, Key="wiki/retrieval.json")["Body"].read())
    assert {k: v for k, v in keys.items() if k != "wiki/retrieval.json"} == {
        "wiki/knn.index": 300_000,
        "wiki/wikipedia-en-sentences.parquet": 200_000,
        "wiki/encoder/config.json": 42,
        "wiki/encoder/tokenizer.json": 2,
        "wiki/encoder/pytorch_model.bin": 100_000,
    }
    assert config["encoder_id"] == "facebook/contriever-msmarco" and config["dimension"] == 768
    assert config["normalize"] is False and config["encoder_dir"] == "encoder"
    assert "2 files, 488.3 KiB" in err and "100.0%" in err, "sizes first, then progress"
    assert "ragchat:knowledge_base=wikipedia" in out and f"wikipedia_s3_uri=s3://{BUCKET}/wiki/" in out


def test_a_second_run_downloads_and_uploads_nothing(hub, s3, tmp_path, capsys):
    args = [f"s3://{BUCKET}/wiki/", "--cache-dir", str(tmp_path / "stage"), "--hub-endpoint", hub.url]
    assert run(args, s3, capsys)[0] == 0
    hub.reset()

    code, out, _ = run(args, s3, capsys)

    assert code == 0 and "0 uploaded" in out and "6 already there" in out
    assert hub.downloads() == []


def test_a_dataset_without_its_index_is_explained(hub, s3, tmp_path, capsys):
    hub.repos[("dataset", script.DATASET)].pop("knn.index")
    code, _, err = run([f"s3://{BUCKET}/w/", "--cache-dir", str(tmp_path / "s"), "--hub-endpoint", hub.url], s3, capsys)
    assert code == 2 and "has no knn.index" in err


def test_an_unknown_revision_is_explained(hub, s3, tmp_path, capsys):
    args = [f"s3://{BUCKET}/w/", "--dataset-revision", "v9", "--cache-dir", str(tmp_path / "s")]
    code, _, err = run([*args, "--hub-endpoint", hub.url], s3, capsys)
    assert code == 2 and "not found on the hub" in err
