"""The chat CLI over HTTP against the local app: one-shot JSON, streamed text, the REPL
driven through its input, session continuity, and a clear message for each failure."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from ragchat.cli import main
from ragchat.client.http_client import ChatClient, ClientFailure, StreamEvent
from ragchat.client.repl import run_repl, source_label
from ragchat.client.signing import SigV4Signer
from ragchat.errors import UpstreamNotReady
from standins.function_url import TEST_CREDENTIALS

QUESTION = "Which instances can I use with Managed Spot Training?"


def test_one_shot_json_for_scripts(live_server, engine, capsys):
    assert main(["ask", QUESTION, "--url", live_server, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outputs"] == "Spot training works on all instances."
    assert result["sources"][0]["metadata"]["row"] == 90
    assert engine.store.turns[result["session_id"]][0].content == QUESTION


def test_one_shot_text_streams_the_answer_then_sources(live_server, capsys):
    assert main(["ask", QUESTION, "--url", live_server]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Spot training works on all instances.")
    assert "faq.csv row 90" in out and "session:" in out


def test_a_reply_cut_at_the_token_limit_is_marked(live_server, capsys):
    assert main(["ask", QUESTION, "--url", live_server, "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("Spot training works [cut at 3 tokens: raise max_new_tokens]\n")
    assert main(["ask", QUESTION, "--url", live_server]) == 0
    assert "[cut at" not in capsys.readouterr().out
    out = io.StringIO()
    client = ChatClient(live_server)
    inputs = iter([QUESTION, "/quit"])
    run_repl(lambda q, s: client.stream(q, s, max_new_tokens=2), read=lambda prompt: next(inputs), out=out)
    assert "bot> Spot training [cut at 2 tokens: raise max_new_tokens]\n" in out.getvalue()


def test_a_reply_withdrawn_by_output_moderation_is_marked(live_server, engine, capsys):
    """The streamed tokens were already shown when output moderation withdrew the reply:
    the CLI must say so, from the final event's `blocked`."""
    engine.generator.reply = "Here is the FORBIDDEN recipe."
    assert main(["ask", QUESTION, "--url", live_server, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["blocked"] is True and result["outputs"] == engine.settings.refusal
    assert main(["ask", QUESTION, "--url", live_server]) == 0
    assert f"\n[blocked by moderation] {engine.settings.refusal}" in capsys.readouterr().out


def test_the_client_receives_tokens_before_the_final_event(live_server):
    client = ChatClient(live_server)
    kinds = [event.kind for event in client.stream(QUESTION)]
    assert kinds[-1] == "done" and kinds.count("token") >= 3 and set(kinds[:-1]) == {"token"}


def test_repl_keeps_the_session_shows_sources_and_starts_new_sessions(live_server, engine):
    inputs = iter([QUESTION, "/sources", "And what does it cost?", "/new", "Hello again", "/quit"])
    out = io.StringIO()
    client = ChatClient(live_server)

    code = run_repl(lambda q, s: client.stream(q, s), read=lambda prompt: next(inputs), out=out)

    assert code == 0
    text = out.getvalue()
    assert text.count("bot> Spot training works on all instances.") == 3
    assert "[1] faq.csv row 90 (score" in text
    assert "(new session)" in text
    sessions = engine.store.turns
    assert sorted(len(turns) for turns in sessions.values()) == [2, 4], "two turns in one session, one in another"


def test_repl_through_the_cli_reads_stdin_until_eof(live_server, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{QUESTION}\n/sources\n"))
    assert main(["chat", "--url", live_server]) == 0
    out = capsys.readouterr().out
    assert "Spot training works on all instances." in out and "faq.csv row 90" in out


def test_a_failed_turn_in_the_repl_is_reported_and_the_repl_goes_on(live_server, engine):
    engine.generator.stream = lambda *a, **k: (_ for _ in ()).throw(
        UpstreamNotReady("endpoint chat", step="generation")
    )
    inputs = iter([QUESTION, "/quit"])
    out = io.StringIO()
    assert run_repl(lambda q, s: ChatClient(live_server).stream(q, s), read=lambda p: next(inputs), out=out) == 0
    assert "error: HTTP 503: a model endpoint is not in service yet in step generation" in out.getvalue()


# -- failure messages ----------------------------------------------------------------


def test_no_credentials_for_a_function_url(no_aws_credentials, capsys):
    url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/"
    assert main(["ask", QUESTION, "--url", url]) == 2
    assert "no AWS credentials found" in capsys.readouterr().err


def test_403_when_the_identity_may_not_invoke(function_url):
    function_url.allowed = False
    client = ChatClient(function_url.url, SigV4Signer(TEST_CREDENTIALS, "us-east-1"))
    with pytest.raises(ClientFailure, match=r"lambda:InvokeFunctionUrl .* and lambda:InvokeFunction on") as failure:
        client.ask(QUESTION)
    assert failure.value.status == 403 and function_url.verified == [True]


def test_403_when_the_request_is_not_signed(function_url, capsys):
    assert main(["ask", QUESTION, "--url", function_url.url]) == 2
    assert "was not signed" in capsys.readouterr().err


def test_endpoint_still_starting(live_server, engine, capsys):
    def not_ready(*args, **kwargs):
        raise UpstreamNotReady("endpoint chat-llm is not in service yet", step="generation")
        yield  # a generator, as the real one

    engine.generator.stream = not_ready
    assert main(["ask", QUESTION, "--url", live_server]) == 2
    err = capsys.readouterr().err
    assert "not in service yet" in err and "try again later" in err


def test_a_parked_deployment_says_how_to_unpark(capsys):
    from conftest import serving
    from ragchat.aws.parked import create_parked_app

    with serving(create_parked_app()) as url:
        assert main(["ask", QUESTION, "--url", url]) == 2
    err = capsys.readouterr().err
    assert "error: HTTP 503: The chat service is parked" in err and "-c ragchat:parked=false" in err


def test_timeout(capsys):
    """A server that accepts the request and never answers."""
    stalled = threading.Event()

    class Stall(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            stalled.wait(5)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        code = main(["ask", QUESTION, "--url", f"http://127.0.0.1:{server.server_address[1]}", "--timeout", "0.5"])
        assert code == 2 and time.monotonic() - started < 4
        assert "no answer from" in capsys.readouterr().err
    finally:
        stalled.set()
        server.shutdown()


def test_nothing_listening(capsys):
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert main(["ask", QUESTION, "--url", f"http://127.0.0.1:{port}"]) == 2
    assert "Is the local service running (`make run`)?" in capsys.readouterr().err


def test_a_bad_request_names_the_field(live_server, capsys):
    assert main(["ask", QUESTION, "--url", live_server, "--max-new-tokens", "0"]) == 2
    assert "field parameters.max_new_tokens" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("metadata", "label"),
    [
        ({"source": "faq.csv", "row": 90}, "faq.csv row 90"),
        ({"source": "docs/guide.pdf", "page": 3, "file": "guide.pdf"}, "docs/guide.pdf page 3"),
        ({"source": "docs/spot.md", "file": "spot.md"}, "docs/spot.md"),
        ({}, "doc-7"),
    ],
)
def test_a_source_is_labelled_by_its_file_and_row_or_page(metadata, label):
    assert source_label({"id": "doc-7", "metadata": metadata}) == label


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["ask", "hi", "--url", "127.0.0.1:9"], {}, "is not an http:// or https:// URL (try http://127.0.0.1:9)"),
        (["serve", "--model", "/nonexistent.gguf", "--port", "0"], {}, "no GGUF model at /nonexistent.gguf"),
        (["ask", "hi"], {"RAGCHAT_MIN_SCORE": "abc"}, "RAGCHAT_MIN_SCORE must be a number, got 'abc'"),
        (["serve", "--conversation-days", "-1"], {}, "must be 0 (keep everything) or more days, got -1"),
    ],
)
def test_user_mistakes_are_one_line_errors_not_tracebacks(argv, env, message, tmp_path, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(["--data-dir", str(tmp_path), *argv])
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_escape_sequences_in_replies_and_sources_never_reach_the_terminal_raw():
    """A retrieved document holding ESC ] 52 (write the clipboard) or ESC ] 0 (retitle the
    window) was printed raw by /sources and the streamed reply."""
    hostile = "Spot docs \x1b]52;c;cm0gLXJmIH4vKgo=\x07 \x1b]0;PWNED\x07 \x1b[8mhidden\r\x9b2J"

    def turn(question, session_id):
        yield StreamEvent("token", {"text": hostile})
        done = {"session_id": "s1" + hostile, "sources": [{"source": "spot.md", "score": 0.7, "text": hostile}],
                "warnings": [hostile], "blocked": True, "outputs": hostile, "finish_reason": "length",
                "usage": {"completion_tokens": hostile}}  # fmt: skip
        yield StreamEvent("done", done)

    inputs = iter([QUESTION, "/sources", "/quit"])
    out = io.StringIO()
    run_repl(turn, read=lambda prompt: next(inputs), out=out)
    shown = out.getvalue()
    assert not any(c in shown for c in "\x1b\x07\r\x9b")
    assert shown.count("\\x1b]52;c;") == 6  # reply, refusal, cut notice, warning, session id and source


def test_escape_sequences_in_file_names_never_reach_the_terminal_raw(tmp_path, capsys):
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "\x1b]0;PWNED\x07x.txt").write_bytes(b"\x00binary")
    assert main(["--data-dir", str(tmp_path / "data"), "ingest", str(folder), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b]0;PWNED\\x07x.txt: binary content" in err


def test_json_output_escapes_c1_controls_too():
    from ragchat.client.repl import print_json

    out = io.StringIO()
    print_json({"outputs": "a\x9d0;PWNED\x9c b\x1b c"}, out)
    assert not any(c in out.getvalue() for c in "\x9d\x9c\x1b")
    assert json.loads(out.getvalue()) == {"outputs": "a\x9d0;PWNED\x9c b\x1b c"}  # the same JSON
