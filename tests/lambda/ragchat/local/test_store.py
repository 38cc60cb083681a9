import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragchat.interfaces import Turn
from ragchat.local.store import SqliteConversationStore


def test_append_and_load_in_order_with_limit(tmp_path):
    store = SqliteConversationStore(tmp_path / "c.sqlite3")
    store.append("s", [Turn("user", "1"), Turn("assistant", "2")])
    store.append("s", [Turn("user", "3"), Turn("assistant", "4")])
    assert [t.content for t in store.load("s")] == ["1", "2", "3", "4"]
    assert [t.content for t in store.load("s", limit=2)] == ["3", "4"]
    assert store.load("other") == []


def test_persists_across_instances(tmp_path):
    SqliteConversationStore(tmp_path / "c.sqlite3").append("s", [Turn("user", "hello")])
    assert SqliteConversationStore(tmp_path / "c.sqlite3").load("s") == [Turn("user", "hello")]


def test_twenty_concurrent_turns_all_land(tmp_path):
    store = SqliteConversationStore(tmp_path / "c.sqlite3")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.append("s", [Turn("user", f"q{i}"), Turn("assistant", f"a{i}")]), range(20)))
    turns = store.load("s", limit=100)
    assert len(turns) == 40
    # Each exchange stays together: an answer always follows its own question.
    for q, a in zip(turns[::2], turns[1::2], strict=True):
        assert q.content[1:] == a.content[1:]


def test_failed_append_writes_nothing(tmp_path):
    store = SqliteConversationStore(tmp_path / "c.sqlite3")
    store.append("s", [Turn("user", "kept")])
    with pytest.raises(sqlite3.IntegrityError):
        store.append("s", [Turn("user", "new"), Turn("robot", "invalid role")])  # type: ignore[arg-type]
    assert store.load("s") == [Turn("user", "kept")]


def test_turns_expire_after_the_days_kept_and_are_deleted_at_the_next_start(tmp_path, monkeypatch):
    """Local conversations were kept for ever, while the deployed table's expire."""
    import time as clock

    path, now = tmp_path / "c.sqlite3", clock.time()
    monkeypatch.setattr("ragchat.local.store.time.time", lambda: now - 31 * 86400)
    running = SqliteConversationStore(path, keep_days=30)  # a server started a month ago
    running.append("old", [Turn("user", "stale"), Turn("assistant", "x")])
    monkeypatch.setattr("ragchat.local.store.time.time", lambda: now)
    running.append("new", [Turn("user", "fresh")])

    assert running.load("old") == [] and running.load("new") == [Turn("user", "fresh")]  # expired: not read
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM turns").fetchone() == (3,)
    SqliteConversationStore(path, keep_days=30)  # the next start deletes them
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT session_id FROM turns").fetchall() == [("new",)]
    assert SqliteConversationStore(path).load("new") == [Turn("user", "fresh")]  # None keeps everything


@pytest.mark.parametrize("days", [-1, 0, float("nan")])
def test_a_keep_time_that_would_delete_everything_is_refused(tmp_path, days):
    """-1 put the expiry in the future: one start deleted every conversation."""
    store = SqliteConversationStore(tmp_path / "c.sqlite3")
    store.append("s", [Turn("user", "kept")])
    with pytest.raises(ValueError, match="keep_days"):
        SqliteConversationStore(tmp_path / "c.sqlite3", keep_days=days)
    assert store.load("s") == [Turn("user", "kept")]
