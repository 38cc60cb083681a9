"""The chat page in headless Chromium (Debian's package, driven by Playwright): ask the
Managed Spot Training question over the real FAQ index, watch the answer stream in, open
the FAQ row 90 source, see an error in the page, start a new session. A screenshot is
kept in test-artifacts/ for each run."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from conftest import PROJECT_ROOT
from doubles import RecordingGenerator
from ragchat.errors import UpstreamModelError
from ragchat.local.factory import LocalSettings, build_local_engine

pytestmark = pytest.mark.models
QUESTION = "Which instances can I use with Managed Spot Training in SageMaker?"
REPLY = "You can use Managed Spot Training with all instances supported in Amazon SageMaker."
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


class SlowGenerator(RecordingGenerator):
    """A scripted reply in many pieces with a pause between them, so streaming is visible."""

    def __init__(self) -> None:
        super().__init__(REPLY, pieces=12)
        self.fail_next = False

    def stream(self, prompt, params) -> Iterator[str]:
        if self.fail_next:
            self.fail_next = False
            raise UpstreamModelError("the model behind chat-llm returned an error", step="generation")
        for piece in super().stream(prompt, params):
            time.sleep(0.08)
            yield piece


@pytest.fixture(scope="module")
def page_engine(tmp_path_factory):
    """Real retrieval (MiniLM ONNX + FAISS over the FAQ) with a scripted, slow generator."""
    return build_local_engine(
        LocalSettings(data_dir=tmp_path_factory.mktemp("web")), generator_factory=SlowGenerator, progress=False
    )


@pytest.fixture
def engine(page_engine):  # the live_server fixture serves this engine
    return page_engine


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def turns_per_session(engine) -> dict[str, int]:
    with closing(sqlite3.connect(engine.store.path)) as db:
        return dict(db.execute("SELECT session_id, COUNT(*) FROM turns GROUP BY session_id").fetchall())


RECORD_ANSWER_LENGTHS = """() => {
  window.answerLengths = [];
  new MutationObserver(() => {
    const answer = document.querySelector('#log li.bot:last-child .answer');
    if (answer) window.answerLengths.push(answer.textContent.length);
  }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});
}"""


def test_ask_stream_sources_error_and_new_session(browser, live_server, page_engine):
    page = browser.new_page(viewport={"width": 900, "height": 760})
    page.goto(f"{live_server}/")
    assert page.title() == "RAG chat" and page.inner_text("#session") == "new session"
    page.evaluate(RECORD_ANSWER_LENGTHS)

    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    page.wait_for_selector("#log li.bot .sources summary", timeout=30_000)

    assert page.inner_text("#log li.bot .answer") == REPLY
    partial = {n for n in page.evaluate("window.answerLengths") if 0 < n < len(REPLY)}
    assert len(partial) >= 3, f"the answer should grow piece by piece, saw lengths {sorted(partial)}"
    assert page.inner_text("#session").startswith("session ")

    sources = page.locator("#log li.bot .sources")
    sources.locator("summary").first.click()
    first = sources.locator("li details.source").first
    assert "Amazon_SageMaker_FAQs.csv row 90" in first.locator("summary").inner_text()
    first.locator("summary").click()
    assert "Managed Spot Training" in first.locator("p").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_page.png"), full_page=True)

    (session_id,) = [s for s, count in turns_per_session(page_engine).items() if count == 2]
    page_engine.generator.fail_next = True
    page.fill("#question", "And the price?")
    page.click("#send")
    page.wait_for_selector("#error:not(:empty)")
    assert "returned an error" in page.inner_text("#error") and "step: generation" in page.inner_text("#error")
    assert page.locator("#log li.bot").count() == 1, "the failed answer leaves no empty bubble"

    page.click("#new-session")
    assert page.locator("#log li").count() == 0 and page.inner_text("#session") == "new session"
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    page.wait_for_selector("#log li.bot .sources summary", timeout=30_000)
    sessions = turns_per_session(page_engine)
    assert len(sessions) == 2 and sessions[session_id] == 2, "the first session is untouched"
    page.close()


def test_new_session_while_a_reply_streams_stops_it_and_starts_afresh(browser, live_server, page_engine):
    """The streaming reply's end stored the old session id again: the next question went to
    the old session while the page showed an empty, "new" one, and the old reply kept the
    model busy to its end."""
    page = browser.new_page()
    page.goto(f"{live_server}/")
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    page.wait_for_selector("#log li.bot .sources summary", timeout=30_000)
    (old_session,) = [s for s in page.evaluate("Object.values(sessionStorage)") if s]
    before = turns_per_session(page_engine)

    page.fill("#question", "And what does it cost?")
    page.press("#question", "Enter")
    page.wait_for_selector("#log li.bot:last-child .answer:not(:empty)")
    page.click("#new-session")
    page.wait_for_selector("#send:enabled")
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    page.wait_for_selector("#log li.bot .sources summary", timeout=30_000)

    after = turns_per_session(page_engine)
    new_sessions = set(after) - set(before)
    assert after[old_session] == before[old_session], "the abandoned turn is not stored in the old session"
    assert len(new_sessions) == 1 and after[new_sessions.pop()] == 2
    assert page.inner_text("#session") != f"session {old_session[:8]}…"
    assert page.locator("#log li.bot").count() == 1 and page.inner_text("#error") == ""
    page.close()


def test_the_page_labels_sources_as_the_cli_does(browser, live_server):
    from ragchat.client.repl import source_label

    page = browser.new_page()
    page.goto(f"{live_server}/")
    for metadata in ({"source": "faq.csv", "row": 0}, {"source": "docs/guide.pdf", "page": 3}, {"source": "a.md"}, {}):
        source = {"id": "doc-7", "score": 0.5, "metadata": metadata}
        assert page.evaluate("sourceLabel", source) == f"{source_label(source)} · score 0.500"
    page.close()


def ask_and_read_the_error(browser, url: str) -> str:
    page = browser.new_page(viewport={"width": 900, "height": 760})
    try:
        page.goto(f"{url}/")
        page.fill("#question", QUESTION)
        page.press("#question", "Enter")
        page.wait_for_selector("#error:not(:empty)")
        return page.inner_text("#error")
    finally:
        page.close()


def test_the_page_says_when_the_model_is_starting_or_the_deployment_is_parked(browser, page_engine):
    """The two 503s of a deployment that is not serving: a model scaled to zero that is
    starting (with about how long it takes), and a parked deployment (with how to unpark)."""
    from conftest import serving
    from ragchat.app import create_app
    from ragchat.aws.parked import create_parked_app
    from ragchat.errors import UpstreamNotReady

    starting = "the model behind chat-ic was scaled to zero while idle and is starting now; it takes about 10 minutes"

    class Starting:
        def __getattr__(self, name):
            return getattr(page_engine, name)

        def stream(self, request):
            raise UpstreamNotReady(starting, step="generation", retry_after=60)
            yield

    with serving(create_app(lambda: Starting())) as url:
        assert starting in ask_and_read_the_error(browser, url)
    with serving(create_parked_app()) as url:
        text = ask_and_read_the_error(browser, url)
    assert "parked" in text and "-c ragchat:parked=false" in text


def test_the_page_marks_a_reply_cut_at_the_token_limit(browser, page_engine):
    """The final event's `finish_reason` "length" shows as a notice under the reply; the
    page's own script and style run under its hash-based policy, with no violation reported."""
    from dataclasses import replace

    from conftest import serving
    from ragchat.app import create_app

    class ShortReplies:
        def __getattr__(self, name):
            return getattr(page_engine, name)

        def stream(self, request):
            yield from page_engine.stream(replace(request, params=replace(request.params, max_new_tokens=4)))

    with serving(create_app(lambda: ShortReplies())) as url:
        page = browser.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        try:
            page.goto(f"{url}/")
            page.fill("#question", QUESTION)
            page.press("#question", "Enter")
            page.wait_for_selector("#log li.bot .sources summary", timeout=30_000)
            assert page.inner_text("#log li.bot .answer") == "You can use Managed"
            assert page.inner_text("#log li.bot .cut") == "The reply was cut at 4 tokens (the max_new_tokens limit)."
            assert not [m for m in console if "Content Security Policy" in m], "the policy let the page run"
        finally:
            page.close()
