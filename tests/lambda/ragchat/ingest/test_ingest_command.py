"""`ragchat ingest` end to end: into the local index (then found by `/retrieve`) and into
Pinecone (the stand-in speaks its control and data planes; the SDK is pointed at it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import make_engine
from ragchat.cli import main
from ragchat.ingest.chunking import chunk_documents
from ragchat.ingest.pipeline import ingest
from ragchat.ingest.sources import read_sources
from ragchat.interfaces import Document
from ragchat.local.vector_index import FaissVectorIndex
from standins.pinecone_server import PineconeStandIn

KEY = "pc-ingest-key"


def run_cli(data_dir: Path, *args: str) -> int:
    return main(["--data-dir", str(data_dir), "ingest", *args, "--no-progress"])


def summary(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def index_matches(data: Path, k: int = 50) -> list:
    """Every chunk in the local index (up to `k`), whatever it says."""
    return FaissVectorIndex(data / "index", 384).query([0.0] * 383 + [1.0], k)


def index_sources(data: Path) -> list[str]:
    """The source of every chunk in the local index, sorted."""
    return sorted(m.metadata["source"] for m in index_matches(data))


def index_texts(data: Path) -> list[str]:
    """The text of every chunk in the local index, sorted."""
    return sorted(m.text for m in index_matches(data))


@pytest.fixture(scope="module")
def embedder():
    from ragchat.local.embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


def test_local_ingest_then_retrieve_finds_the_documents(tmp_path, docs_folder, capsys, embedder):
    assert run_cli(tmp_path / "data", str(docs_folder)) == 0
    assert summary(capsys).startswith("documents 3, chunks ")

    from starlette.testclient import TestClient

    from ragchat.app import create_app

    index = FaissVectorIndex(tmp_path / "data" / "index", 384)
    engine = make_engine(embedder=embedder, index=index)
    with TestClient(create_app(lambda: engine), base_url="http://localhost") as client:
        matches = client.post("/retrieve", json={"query": "what is the zebra-quokka protocol?"}).json()["matches"]
        billing = client.post("/retrieve", json={"query": "how are idle endpoints billed?"}).json()["matches"]
    assert matches[0]["metadata"]["file"] == "spot.md" and "zebra-quokka" in matches[0]["text"]
    assert matches[0]["metadata"]["section"] == "Spot training"
    assert billing[0]["metadata"]["file"] == "pricing.html"
    # every caller sees sources: they name the file inside the folder, not where it lay on disk
    assert matches[0]["metadata"]["source"] == "spot.md"
    assert str(tmp_path) not in json.dumps(matches + billing)


def test_second_run_upserts_nothing_and_sync_deletes_what_is_gone(tmp_path, docs_folder, capsys):
    data = tmp_path / "data"
    assert run_cli(data, str(docs_folder)) == 0
    first = summary(capsys)
    assert run_cli(data, str(docs_folder)) == 0
    assert ", upserted 0, skipped " in summary(capsys)

    (docs_folder / "notes.txt").unlink()
    (docs_folder / "spot.md").write_text("# Spot training\n\nNow much shorter.\n")
    assert run_cli(data, str(docs_folder), "--dry-run", "--sync") == 0
    assert FaissVectorIndex(data / "index", 384).count() == int(first.split("chunks ")[1].split(",")[0])
    assert run_cli(data, str(docs_folder), "--sync") == 0
    line = summary(capsys)
    assert ", upserted 1, " in line and ", deleted 0," not in line
    index = FaissVectorIndex(data / "index", 384)
    texts = [m.text for m in index.query([0.0] * 383 + [1.0], 50)]
    assert any("Now much shorter." in t for t in texts)
    assert not any("scales to zero" in t for t in texts)  # notes.txt's chunk was deleted


def test_sync_deletes_only_what_came_from_the_given_folder(tmp_path, docs_folder, capsys, embedder):
    """The index also holds the built-in FAQ and another folder's chunks: syncing one folder
    after a file of it was removed deletes that file's chunks and nothing else."""
    from ragchat.local.factory import ensure_knowledge_base, local_index

    data = tmp_path / "data"
    faq = tmp_path / "faq.csv"
    faq.write_text("What is Spot?,Spare capacity.\nWhat is Canvas?,No-code ML.\n")
    ensure_knowledge_base(faq, embedder, local_index(data, 384), data / "state.json", progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "otter.md").write_text("The otter protocol keeps this folder's chunks.\n")
    assert run_cli(data, str(other)) == 0
    assert run_cli(data, str(docs_folder)) == 0
    capsys.readouterr()
    before = set(FaissVectorIndex(data / "index", 384).list_ids())

    (docs_folder / "notes.txt").unlink()
    assert run_cli(data, str(docs_folder), "--dry-run", "--sync") == 0
    err = capsys.readouterr().err
    assert "would upsert 0 chunks and delete 1: docs/notes.txt (1)" in err
    assert set(FaissVectorIndex(data / "index", 384).list_ids()) == before

    assert run_cli(data, str(docs_folder), "--sync") == 0
    assert ", deleted 1, " in summary(capsys)
    after = FaissVectorIndex(data / "index", 384)
    assert set(after.list_ids()) == {i for i in before if not i.startswith("docs/notes.txt#")}
    sources = {m.metadata["source"] for m in after.query([0.0] * 383 + [1.0], 100)}
    assert sources == {"faq.csv", "otter.md", "spot.md", "pricing.html"}


def test_sync_of_an_emptied_folder_deletes_all_its_chunks_and_nothing_else(tmp_path, docs_folder, capsys):
    data = tmp_path / "data"
    (tmp_path / "keep.md").write_text("A file given on its own stays.\n")
    assert run_cli(data, str(tmp_path / "keep.md")) == 0
    assert run_cli(data, str(docs_folder)) == 0
    for file in docs_folder.iterdir():
        file.unlink()
    assert run_cli(data, str(docs_folder)) == 1, "without --sync an empty folder is still an error"
    assert run_cli(data, str(docs_folder), "--sync") == 0
    assert ", deleted 0," not in summary(capsys)
    assert [i.split("#")[0] for i in FaissVectorIndex(data / "index", 384).list_ids()] == ["keep.md"]


def test_a_restart_rebuilds_faq_rows_missing_from_the_index(tmp_path, embedder):
    """Rows deleted from the index behind the state file's back (an older `--sync` deleted
    the whole FAQ) come back at the next start, not only when the index is empty."""
    from ragchat.local.factory import ensure_knowledge_base, local_index

    faq, state = tmp_path / "faq.csv", tmp_path / "state.json"
    faq.write_text("What is Spot?,Spare capacity.\nWhat is Canvas?,No-code ML.\n")
    index = local_index(tmp_path, 384)
    assert ensure_knowledge_base(faq, embedder, index, state, progress=False) is True
    assert ensure_knowledge_base(faq, embedder, index, state, progress=False) is False
    index.upsert([Document("docs/a.md#1", "kept", {"source": "a.md"})], [[1.0] + [0.0] * 383])
    index.delete([i for i in index.list_ids() if "#" not in i][:1])
    assert ensure_knowledge_base(faq, embedder, index, state, progress=False) is True
    assert index.count() == 3


def test_sync_of_a_single_file_deletes_only_its_own_old_chunks(tmp_path, capsys):
    data = tmp_path / "data"
    (tmp_path / "a.md").write_text("First version of a.\n")
    (tmp_path / "b.md").write_text("Unrelated file b.\n")
    assert run_cli(data, str(tmp_path / "a.md")) == 0
    assert run_cli(data, str(tmp_path / "b.md")) == 0
    (tmp_path / "a.md").write_text("Second version of a.\n")
    assert run_cli(data, str(tmp_path / "a.md"), "--sync") == 0
    out = capsys.readouterr()
    assert ", upserted 1, " in out.out.splitlines()[-1] and ", deleted 1, " in out.out.splitlines()[-1]
    assert "deleted 1: a.md (1)" in out.err
    assert index_texts(data) == ["Second version of a.", "Unrelated file b."]


def test_forget_deletes_what_a_removed_file_or_folder_stored_and_nothing_else(tmp_path, capsys):
    """A file given alone and then deleted kept its chunks for good: `--sync` of a missing
    path fails (a wrong working directory must not wipe a folder's chunks), and there was
    no other way to delete them."""
    data = tmp_path / "data"
    (tmp_path / "manual.md").write_text("Tyre pressure is 3 bar.\n")
    (tmp_path / "manual.md.txt").write_text("An old copy.\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("Folder file a.\n")
    for source in ("manual.md", "manual.md.txt", "docs"):
        assert run_cli(data, str(tmp_path / source)) == 0
    (tmp_path / "manual.md").unlink()
    capsys.readouterr()

    assert run_cli(data, str(tmp_path / "manual.md"), "--sync") == 1
    assert f"run with --forget {tmp_path / 'manual.md'}" in capsys.readouterr().err
    assert run_cli(data, "--forget", str(tmp_path / "docs")) == 2  # it exists: --sync re-reads it
    assert run_cli(data, "--forget", str(tmp_path / "manual.md")) == 0
    out = capsys.readouterr()
    assert "deleted 1: manual.md (1)" in out.err and ", deleted 1, " in out.out.splitlines()[-1]
    assert index_texts(data) == ["An old copy.", "Folder file a."]

    (tmp_path / "docs" / "a.md").unlink()
    (tmp_path / "docs").rmdir()
    assert run_cli(data, "--forget", str(tmp_path / "docs")) == 0
    assert index_texts(data) == ["An old copy."]


def test_forget_of_a_path_inside_an_ingested_folder_points_to_sync_of_that_folder(tmp_path, capsys):
    """`--forget docs/sub` found nothing and said only "deleted 0"; `--sync` of `docs` is what
    deletes exactly its chunks (scopes guessed from parent names would claim another folder's:
    `archive/docs/sub` ingested as `docs` has the same ids)."""
    data, docs = tmp_path / "data", tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "notes.txt").write_text("Sub notes.\n")
    (docs / "keep.md").write_text("Kept file.\n")
    assert run_cli(data, str(docs)) == 0
    (docs / "sub" / "notes.txt").unlink()
    (docs / "sub").rmdir()
    capsys.readouterr()

    assert run_cli(data, "--forget", str(docs / "sub")) == 0
    assert "if it was inside a folder you ingested, run `ragchat ingest FOLDER --sync`" in capsys.readouterr().err
    assert run_cli(data, str(docs), "--sync") == 0
    assert "deleted 1: docs/sub/notes.txt (1)" in capsys.readouterr().err
    assert index_texts(data) == ["Kept file."]


def test_chunks_a_run_without_sync_leaves_behind_are_pointed_out(tmp_path, docs_folder, capsys):
    """Re-ingesting with other chunk settings kept both chunkings searchable, silently."""
    data = tmp_path / "data"
    assert run_cli(data, str(docs_folder)) == 0
    capsys.readouterr()
    assert run_cli(data, str(docs_folder), "--chunk-tokens", "60", "--overlap-tokens", "10") == 0
    err = capsys.readouterr().err
    note = re.search(r"note: (\d+) chunks of 1 source\(s\) under these paths are not from this run", err)
    assert note, err
    both = len(index_texts(data))
    assert run_cli(data, str(docs_folder), "--chunk-tokens", "60", "--overlap-tokens", "10", "--sync") == 0
    assert "note:" not in capsys.readouterr().err
    assert len(index_texts(data)) == both - int(note[1])  # exactly what the note counted is gone


class FailingIndex:
    """Lets `fail_at` upserts through, then fails: an interrupted run."""

    def __init__(self, inner, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def upsert(self, documents, vectors, namespace="", sparse=None):
        self.calls += 1
        if self.calls > self.fail_at:
            raise ConnectionError("network dropped")
        return self.inner.upsert(documents, vectors, namespace, sparse)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class CountingEmbedder:
    def __init__(self, inner) -> None:
        self.inner, self.dimension, self.texts = inner, inner.dimension, 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


def test_interrupted_run_resumes_without_re_embedding_finished_batches(tmp_path, tokens, embedder):
    from ragchat.local.factory import DEFAULT_KNOWLEDGE_BASE

    texts, _ = read_sources([DEFAULT_KNOWLEDGE_BASE])
    chunks = chunk_documents(texts, tokens)
    index = FaissVectorIndex(tmp_path / "index", 384)
    with pytest.raises(ConnectionError):
        ingest(chunks, embedder, FailingIndex(index, fail_at=2), batch_size=32, progress=False)
    assert index.count() == 64

    counting = CountingEmbedder(embedder)
    result = ingest(chunks, counting, index, batch_size=32, progress=False)
    assert (result.skipped, result.upserted) == (64, len(chunks) - 64)
    assert counting.texts == len(chunks) - 64  # only the missing chunks
    assert index.count() == len(chunks)


def test_bad_input_reports_and_exits_non_zero_when_nothing_is_valid(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert run_cli(tmp_path / "data", str(bad), str(tmp_path / "missing.csv")) == 1
    err = capsys.readouterr().err
    assert f"skipped {bad}:1: not valid JSON" in err
    assert f"skipped {tmp_path / 'missing.csv'}: no such file or folder" in err
    assert "nothing valid to ingest" in err


def test_local_index_of_another_dimension_is_refused(tmp_path, docs_folder, capsys):
    FaissVectorIndex(tmp_path / "data" / "index", 768).upsert([], [])
    (tmp_path / "data" / "index" / "manifest.json").write_text(json.dumps({"dimension": 768, "namespaces": []}))
    assert run_cli(tmp_path / "data", str(docs_folder)) == 2
    assert "refusing to write" in capsys.readouterr().err


# -- Pinecone ---------------------------------------------------------------------------
@pytest.fixture
def pinecone(monkeypatch):
    server = PineconeStandIn(api_key=KEY, ready_after=2)
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", server.url)
    monkeypatch.setenv("PINECONE_API_KEY", KEY)
    yield server
    server.close()


def test_pinecone_ingest_creates_the_index_waits_and_upserts(tmp_path, docs_folder, pinecone, capsys):
    code = run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb", "--batch-size", "4")
    assert code == 0, capsys.readouterr().err
    line = summary(capsys)

    assert [r.path for r in pinecone.requests][0] == "/indexes"  # listed first: is it there?
    [create] = [r for r in pinecone.requests if r.method == "POST" and r.path == "/indexes"]
    assert create.json() == {
        "name": "kb",
        "schema": {
            "fields": {
                "_values": {"type": "dense_vector", "dimension": 384, "metric": "dotproduct"},
                "_sparse_values": {"type": "sparse_vector"},
            }
        },
        "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
    }
    describes = [r for r in pinecone.requests if r.method == "GET" and r.path == "/indexes/kb"]
    assert len(describes) >= 2  # polled until Ready
    upserts = pinecone.data_requests("/vectors/upsert")
    sizes = [len(u.json()["vectors"]) for u in upserts]
    assert all(size <= 4 for size in sizes)
    total = sum(sizes)
    assert f"upserted {total}," in line
    vector = upserts[0].json()["vectors"][0]
    assert len(vector["values"]) == 384 and vector["id"].split("#")[0] in {
        "docs/spot.md",
        "docs/pricing.html",
        "docs/notes.txt",
    }
    sparse = vector["sparseValues"]  # BM25 weights of the chunk's words, hashed to uint32
    assert len(sparse["indices"]) == len(sparse["values"]) > 0 and all(v > 0 for v in sparse["values"])
    assert sparse["indices"] == sorted(sparse["indices"]) and max(sparse["indices"]) < 2**32
    assert {"text", "source", "chunk"} <= set(vector["metadata"])
    assert all(r.headers["api-key"] == KEY for r in pinecone.requests)

    pinecone.reset()
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb") == 0
    assert ", upserted 0, skipped " in summary(capsys)
    assert pinecone.data_requests("/vectors/upsert") == []
    assert pinecone.data_requests("/vectors/list")  # it asked what the index holds
    assert not [r for r in pinecone.requests if r.method == "POST" and r.path == "/indexes"]

    # a record that another source wrote (the stack's FAQ, another folder) is never touched by --sync
    pinecone.vectors()["faq-row-0"] = ([0.0] * 384, {"source": "Amazon_SageMaker_FAQs.csv", "text": "Q"})
    (docs_folder / "notes.txt").unlink()
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb", "--sync", "--dry-run") == 0
    assert "would upsert 0 chunks and delete 1: docs/notes.txt (1)" in capsys.readouterr().err
    assert pinecone.data_requests("/vectors/delete") == []
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb", "--sync") == 0
    [delete] = pinecone.data_requests("/vectors/delete")
    assert [i.split("#")[0] for i in delete.json()["ids"]] == ["docs/notes.txt"]
    assert len(pinecone.vectors()) == total and "faq-row-0" in pinecone.vectors()
    listed = [parse_qs(urlparse(r.path).query) for r in pinecone.data_requests("/vectors/list")]
    assert {q["prefix"][0] for q in listed} == {"docs/"}  # it lists only the ids under the given folder


def test_a_cosine_pinecone_index_is_refused_before_writing(tmp_path, docs_folder, pinecone, capsys):
    """An index made before hybrid search cannot take sparse vectors, nor be changed to."""
    pinecone.add_index("kb", metric="cosine")
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb") == 2
    assert "cannot hold sparse vectors" in capsys.readouterr().err
    assert pinecone.data_requests("/vectors/upsert") == []


def test_pinecone_index_of_another_dimension_is_refused_before_writing(tmp_path, docs_folder, pinecone, capsys):
    pinecone.add_index("kb", dimension=768, metric="dotproduct", sparse=True)
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb") == 2
    assert "has dimension 768, the embedder 384" in capsys.readouterr().err
    assert pinecone.data_requests("/vectors/upsert") == []


def test_pinecone_throttling_is_retried(tmp_path, docs_folder, pinecone, capsys):
    pinecone.add_index("kb", metric="dotproduct", sparse=True)
    pinecone.fail(429, times=2, paths=("/vectors/upsert",))
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone", "--index", "kb") == 0
    upserts = pinecone.data_requests("/vectors/upsert")
    assert len(upserts) == 3  # two throttled attempts, then the batch landed
    assert len(pinecone.vectors()) == len(upserts[-1].json()["vectors"])


def test_pinecone_upserts_are_cut_to_its_2_mb_request_limit(tmp_path, pinecone, capsys):
    """Characters the tokenizer hardly counts (a run of emoji is one [UNK]) make chunks of a
    few tokens but kilobytes each: a hundred of them no longer fit one 2 MB request."""
    records = [{"text": f"Release note {n}: " + "\U0001f680" * 3_700} for n in range(150)]
    (tmp_path / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    code = run_cli(
        tmp_path, str(tmp_path / "notes.jsonl"), "--target", "pinecone", "--index", "kb", "--batch-size", "200"
    )
    assert code == 0, capsys.readouterr().err
    upserts = pinecone.data_requests("/vectors/upsert")
    assert len(upserts) > 1 and max(len(u.body) for u in upserts) <= 2 * 1024 * 1024
    assert len(pinecone.vectors()) == 150 and ", upserted 150," in summary(capsys)


def test_a_record_whose_fields_pinecone_cannot_hold_is_reported_and_the_rest_ingested(tmp_path, pinecone, capsys):
    """A JSONL field of 48 KB went into the record's metadata, and Pinecone refused the run
    mid-way as "index unavailable"."""
    lines = [{"text": "Endpoints bill per second.", "html": "<p>x</p>" * 6_000}, {"text": "Spot saves money."}]
    (tmp_path / "kb.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert run_cli(tmp_path, str(tmp_path / "kb.jsonl"), "--target", "pinecone", "--index", "kb") == 0
    out = capsys.readouterr()
    assert f"skipped {tmp_path / 'kb.jsonl'}:1: its metadata fields take 48,020 bytes, the largest 'html'" in out.err
    assert "leave it out with --metadata-fields" in out.err
    assert ", upserted 1, " in out.out.splitlines()[-1] and "problems 1," in out.out.splitlines()[-1]
    [(_, metadata)] = pinecone.vectors().values()
    assert metadata["text"] == "Spot saves money."
    assert (
        run_cli(
            tmp_path, str(tmp_path / "kb.jsonl"), "--target", "pinecone", "--index", "kb", "--metadata-fields", "url"
        )
        == 0
    )
    assert len(pinecone.vectors()) == 2


def test_the_pinecone_adapter_refuses_an_oversized_record_without_sending_its_batch(pinecone):
    from ragchat.aws.pinecone_index import PineconeVectorIndex, RecordTooLarge

    pinecone.add_index("kb", metric="dotproduct", sparse=True)
    index = PineconeVectorIndex("kb", lambda refresh=False: KEY)
    fine = Document("a.md#1", "Endpoints bill per second.", {"source": "a.md"})
    huge = Document("a.md#2", "Spot saves money.", {"source": "a.md", "html": "<p>x</p>" * 6_000})
    with pytest.raises(RecordTooLarge, match="chunk a.md#2: .* over Pinecone's 40,960 per record"):
        index.upsert([fine, huge], [[1.0] + [0.0] * 383] * 2)
    assert pinecone.data_requests("/vectors/upsert") == [] and pinecone.vectors() == {}


def test_pinecone_without_a_key_says_how_to_give_one(tmp_path, docs_folder, monkeypatch, capsys):
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    assert run_cli(tmp_path, str(docs_folder), "--target", "pinecone") == 2
    assert "set PINECONE_API_KEY, or pass --secret-arn" in capsys.readouterr().err


def test_a_pdf_is_ingested_page_by_page_and_retrieved_with_its_page(tmp_path, make_pdf, capsys, embedder):
    pdf = make_pdf(
        tmp_path / "guide.pdf",
        ["Endpoints bill per instance-second.", "The okapi-lemur method warms endpoints before traffic peaks."],
    )
    assert run_cli(tmp_path / "data", str(pdf)) == 0
    assert summary(capsys).startswith("documents 2, chunks 2, upserted 2")

    index = FaissVectorIndex(tmp_path / "data" / "index", 384)
    engine = make_engine(embedder=embedder, index=index)
    (top, *_) = engine.retrieve("what is the okapi-lemur method?")
    assert top.metadata["file"] == "guide.pdf" and top.metadata["page"] == 2
    assert "okapi-lemur" in top.text


def test_sync_of_a_file_never_deletes_a_source_whose_name_continues_with_a_hash(tmp_path, capsys):
    """`notes.md` must not claim the chunks of folder `notes.md#archive` nor of file `notes.md#x.md`."""
    data = tmp_path / "data"
    (tmp_path / "notes.md").write_text("The notes file.\n")
    (tmp_path / "notes.md#x.md").write_text("A file whose name continues after a hash.\n")
    (tmp_path / "notes.md#archive").mkdir()
    (tmp_path / "notes.md#archive" / "a.md").write_text("An archived note in a folder named with a hash.\n")
    for given in ("notes.md", "notes.md#x.md", "notes.md#archive"):
        assert run_cli(data, str(tmp_path / given)) == 0
    (tmp_path / "notes.md").write_text("The notes file, edited.\n")
    assert run_cli(data, str(tmp_path / "notes.md"), "--sync") == 0
    assert ", deleted 1, " in summary(capsys)
    assert index_sources(data) == ["a.md", "notes.md", "notes.md#x.md"]
    ids = FaissVectorIndex(data / "index", 384).list_ids()
    assert all(i.count("#") == 1 and i.isascii() for i in ids), ids
    assert any(i.startswith("notes.md%23archive/a.md#") for i in ids), ids


def test_sync_leaves_alone_ids_written_with_a_hash_by_an_older_version(tmp_path, embedder, capsys):
    """Indexes written before ids escaped '#' hold `notes.md#archive/a.md#<digest>`: syncing `notes.md` keeps it."""
    data = tmp_path / "data"
    old = Document("notes.md#archive/a.md#" + "0" * 32, "An old archived note.", {"source": "a.md"})
    FaissVectorIndex(data / "index", 384).upsert([old], embedder.embed([old.text]))
    (tmp_path / "notes.md").write_text("The notes file.\n")
    assert run_cli(data, str(tmp_path / "notes.md"), "--sync") == 0
    assert ", deleted 0, " in summary(capsys)
    assert old.id in FaissVectorIndex(data / "index", 384).list_ids()


def test_a_name_too_long_for_a_pinecone_id_is_a_problem_not_a_crash(tmp_path, capsys, embedder):
    folder = tmp_path / "kb"
    (folder / ("d" * 240)).mkdir(parents=True)
    (folder / ("d" * 240) / ("f" * 240 + ".md")).write_text("Too deep for a 512-character id.\n")
    (folder / "ok.md").write_text("A file with a short name.\n")
    assert run_cli(tmp_path / "data", str(folder)) == 0
    out = capsys.readouterr()
    assert "problems 1," in out.out.splitlines()[-1] and "id longer than 512" in out.err
    assert index_sources(tmp_path / "data") == ["ok.md"]
    # a chunk an older version wrote under that name (the local index took long ids) is kept by --sync
    old = Document(f"kb/{'d' * 240}/{'f' * 240}.md#{'0' * 32}", "Too deep, ingested long ago.", {"source": "old"})
    FaissVectorIndex(tmp_path / "data" / "index", 384).upsert([old], embedder.embed([old.text]))
    assert run_cli(tmp_path / "data", str(folder), "--sync") == 0
    assert ", deleted 0, kept 1 (files with problems), " in summary(capsys)
    assert index_sources(tmp_path / "data") == ["ok.md", "old"]


def test_a_file_name_that_is_not_utf8_is_a_problem_and_the_rest_is_ingested(tmp_path, capsys):
    import os

    folder = tmp_path / "kbx"
    folder.mkdir()
    (folder / "good.md").write_text("A readable note.\n")
    try:
        with open(os.fsencode(folder) + b"/bad\xffname.md", "w") as handle:
            handle.write("A note whose name is not UTF-8.\n")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    assert run_cli(tmp_path / "data", str(folder)) == 0
    out = capsys.readouterr()
    assert "problems 1," in out.out.splitlines()[-1]
    assert "bad\\xffname.md: the file name is not UTF-8" in out.err
    assert index_sources(tmp_path / "data") == ["good.md"]


def test_sync_keeps_the_chunks_of_a_file_that_exists_but_cannot_be_read(tmp_path, capsys):
    data, folder = tmp_path / "data", tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("File a is fine.\n")
    (folder / "b.md").write_text("File b will turn unreadable.\n")
    (folder / "c.md").write_text("File c will be removed.\n")
    assert run_cli(data, str(folder)) == 0
    (folder / "b.md").write_bytes(b"not UTF-8 \xff\xfe\n")
    (folder / "c.md").unlink()
    assert run_cli(data, str(folder), "--sync") == 0
    out = capsys.readouterr()
    assert ", deleted 1, kept 1 (files with problems), problems 1," in out.out.splitlines()[-1]
    assert "kept 1: kb/b.md (1): their files were reported as problems" in out.err
    assert index_sources(data) == ["a.md", "b.md"]


def test_sync_of_a_folder_whose_files_all_fail_deletes_nothing_and_fails(tmp_path, capsys):
    data, folder = tmp_path / "data", tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("File a.\n")
    (folder / "b.md").write_text("File b.\n")
    assert run_cli(data, str(folder)) == 0
    for name in ("a.md", "b.md"):
        (folder / name).write_bytes(b"\xff\xfe broken\n")
    assert run_cli(data, str(folder), "--sync") == 1
    assert "nothing valid to ingest" in capsys.readouterr().err
    assert index_sources(data) == ["a.md", "b.md"]


def test_pinecone_sync_of_a_file_keeps_the_chunks_of_names_continuing_with_a_hash(tmp_path, pinecone, capsys):
    (tmp_path / "notes.md").write_text("The notes file.\n")
    (tmp_path / "notes.md#archive").mkdir()
    (tmp_path / "notes.md#archive" / "café.md").write_text("An archived note in a folder named with a hash.\n")
    pc = ("--target", "pinecone", "--index", "kb")
    assert run_cli(tmp_path, str(tmp_path / "notes.md"), *pc) == 0
    assert run_cli(tmp_path, str(tmp_path / "notes.md#archive"), *pc) == 0
    ids = sorted(pinecone.vectors())
    assert [i.split("#")[0] for i in ids] == ["notes.md", "notes.md%23archive/caf%C3%A9.md"]
    assert all(i.isascii() and len(i) <= 512 for i in ids)  # Pinecone's record id: ASCII, at most 512
    (tmp_path / "notes.md").write_text("The notes file, edited.\n")
    assert run_cli(tmp_path, str(tmp_path / "notes.md"), *pc, "--sync") == 0
    [delete] = pinecone.data_requests("/vectors/delete")
    assert delete.json()["ids"] == [ids[0]]
    assert ids[1] in pinecone.vectors()


def test_knowledge_base_none_serves_only_your_own_documents(tmp_path, capsys):
    """The FAQ's 154 rows were always indexed beside your own documents (and came back in
    answers about them); `--knowledge-base none` leaves them out, removing what an earlier
    run indexed, and keeps everything `ingest` added."""
    from ragchat.local.factory import LocalSettings, faq_parts

    data = tmp_path / "data"
    (tmp_path / "bikes.md").write_text("Zephyr e-bikes charge in four hours.\n")
    assert run_cli(data, str(tmp_path / "bikes.md")) == 0
    with_faq = faq_parts(LocalSettings(data_dir=data), progress=False)["index"]
    assert with_faq.count("") == 155
    mine = faq_parts(LocalSettings(data_dir=data, knowledge_base=None), progress=False)["index"]
    assert [m.text for m in mine.query([0.0] * 383 + [1.0], 10)] == ["Zephyr e-bikes charge in four hours."]


def test_forget_finds_a_file_by_the_name_it_was_given_even_through_a_broken_link(tmp_path, capsys):
    data = tmp_path / "data"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "v3.md").write_text("Version three notes.\n")
    (tmp_path / "latest.md").symlink_to(tmp_path / "a" / "v3.md")
    assert run_cli(data, str(tmp_path / "latest.md")) == 0
    (tmp_path / "a" / "v3.md").unlink()  # the link is now broken: it exists no more
    assert run_cli(data, "--forget", str(tmp_path / "latest.md")) == 0
    assert "deleted 1: latest.md (1)" in capsys.readouterr().err


def test_data_dir_may_follow_the_command(tmp_path, capsys):
    """`ragchat serve --data-dir X` was refused as an unrecognized argument."""
    (tmp_path / "a.md").write_text("Placed after the command.\n")
    assert main(["ingest", str(tmp_path / "a.md"), "--data-dir", str(tmp_path / "after"), "--no-progress"]) == 0
    assert FaissVectorIndex(tmp_path / "after" / "index", 384).count("") == 1
    # before the command it still works, and a command without it keeps the one given before
    assert main(["--data-dir", str(tmp_path / "before"), "ingest", str(tmp_path / "a.md"), "--no-progress"]) == 0
    assert FaissVectorIndex(tmp_path / "before" / "index", 384).count("") == 1


def test_a_file_added_alone_gets_the_knowledge_bases_word_weights(tmp_path, embedder):
    """BM25 was fitted on each run's own chunks: a file ingested alone on day two had a
    one-document corpus, and its keyword score was 13 times lower than ingested with its
    folder. Fitted on what the local index holds too, both ways give the same weights."""
    folder = tmp_path / "kb"
    folder.mkdir()
    for n in range(12):
        (folder / f"note{n}.md").write_text(f"Note {n} is about endpoint {n}, billing and instance types.\n")
    extra = "The zebra refund window closes after thirty days for purple widgets.\n"
    (folder / "refund.md").write_text(extra)
    together, apart = tmp_path / "together", tmp_path / "apart"
    assert main(["--data-dir", str(together), "ingest", str(folder), "--no-progress"]) == 0
    (folder / "refund.md").unlink()
    assert main(["--data-dir", str(apart), "ingest", str(folder), "--no-progress"]) == 0
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "refund.md").write_text(extra)
    assert main(["--data-dir", str(apart), "ingest", str(lone / "refund.md"), "--no-progress"]) == 0

    from ragchat.retrieval import encode_query

    query = "zebra refund window purple widgets"
    vector, sparse = embedder.embed([query])[0], encode_query(query, 1.0)
    scores = [FaissVectorIndex(data / "index", 384).query(vector, 1, sparse=sparse)[0] for data in (together, apart)]
    assert [m.text for m in scores] == [extra.strip()] * 2
    assert scores[1].score == pytest.approx(scores[0].score, rel=1e-4)
