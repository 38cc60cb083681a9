"""The local mode on a Wikipedia-format index: `ragchat wikipedia build` writes the folder
from plain text, `ragchat --wikipedia DIR serve` (or $RAGCHAT_WIKIPEDIA_DIR with `make run`)
answers from it through the retrieval endpoint's own handler, in-process."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from doubles import RecordingGenerator
from ragchat import cli
from ragchat.app import create_app
from ragchat.local.factory import LocalSettings, build_local_engine

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def wiki_dir(tmp_path_factory):
    sources = tmp_path_factory.mktemp("articles")
    (sources / "apollo.md").write_text(
        "# Apollo 17\n\nApollo 17 was the final mission of NASA's Apollo program. It launched in December 1972. "
        "Eugene Cernan was the last person to walk on the Moon. He re-entered the lunar module on December 14. "
        "The crew returned to Earth on December 19. The mission set records for crewed spaceflight.\n"
    )
    (sources / "more.jsonl").write_text(
        json.dumps({"title": "Sourdough", "text": "Sourdough is bread made with wild yeast. It tastes mildly sour. "
                    "Bakers keep a starter alive by feeding it flour and water."}) + "\n"
        + "not json\n"
    )  # fmt: skip
    out = tmp_path_factory.mktemp("wiki")
    code = cli.main(["wikipedia", "build", str(sources), "--out", str(out), "--no-progress"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def engine_and_generator(wiki_dir, tmp_path_factory):
    generator = RecordingGenerator("Eugene Cernan.")
    settings = LocalSettings(data_dir=tmp_path_factory.mktemp("data"), wikipedia_dir=wiki_dir)
    return build_local_engine(settings, generator_factory=lambda: generator, progress=False), generator


def test_build_reports_what_it_wrote_and_skips_bad_lines(wiki_dir, capsys):
    assert sorted(p.name for p in wiki_dir.iterdir()) == [
        "encoder", "knn.index", "retrieval.json", "wikipedia-en-sentences.parquet",
    ]  # fmt: skip
    code = cli.main(["wikipedia", "build", str(wiki_dir / "missing.md"), "--out", str(wiki_dir / "x")])
    err = capsys.readouterr().err
    assert code == 1 and "missing.md: no such file" in err and "error: the sources hold no text" in err


def test_chat_answers_from_the_wikipedia_index_with_titles_and_snippet_ids(engine_and_generator):
    engine, generator = engine_and_generator
    with TestClient(create_app(lambda: engine), base_url="http://localhost") as client:
        body = client.post("/chat", json={"inputs": "Who was the last man to walk on the Moon?"}).json()

    top = body["sources"][0]
    assert top["metadata"]["title"] == "Apollo 17" and top["metadata"]["source"] == "wikipedia"
    assert top["id"] == f"wikipedia:{top['metadata']['row']}" and top["metadata"]["row"] in top["metadata"]["snippets"]
    assert "Eugene Cernan" in top["text"]
    assert "Eugene Cernan was the last person" in generator.prompts[-1].describe()
    assert body["outputs"] == "Eugene Cernan."


def test_retrieve_route_shows_the_passages(engine_and_generator):
    engine, _ = engine_and_generator
    with TestClient(create_app(lambda: engine), base_url="http://localhost") as client:
        body = client.post("/retrieve", json={"query": "How do bakers keep a starter alive?", "top_k": 1}).json()
    (match,) = body["matches"]
    assert match["metadata"]["title"] == "Sourdough" and "feeding it flour" in match["text"]


def test_a_folder_without_an_index_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="ragchat wikipedia build"):
        build_local_engine(LocalSettings(data_dir=tmp_path, wikipedia_dir=tmp_path / "none"), progress=False)
