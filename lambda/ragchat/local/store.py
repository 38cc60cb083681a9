"""Conversation store in one SQLite file: one row per turn, appended in a transaction.

Appending (instead of rewriting the transcript, as the original did) means concurrent
requests on one session all land, and a failed request writes nothing. Turns expire
`keep_days` after they were written, as the deployed table's do: they are no longer read
from then, and deleted when a store opens the file (each `ragchat serve` start)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from ..interfaces import Turn

SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, turn)
)
"""


class SqliteConversationStore:
    def __init__(self, path: Path | str, keep_days: float | None = None) -> None:
        """`keep_days`: how long a turn is kept; None keeps every turn."""
        if keep_days is not None and not keep_days > 0:
            raise ValueError(f"keep_days must be over 0 (None keeps everything), got {keep_days}")
        self.path = str(path)
        self.keep_seconds = None if keep_days is None else keep_days * 86400
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)
            db.execute("DELETE FROM turns WHERE created_at < ?", (self._cutoff(),))

    def _cutoff(self) -> float:
        return float("-inf") if self.keep_seconds is None else time.time() - self.keep_seconds

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: sqlite3 connections must not cross threads.
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def load(self, session_id: str, limit: int = 50) -> list[Turn]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT role, content FROM turns WHERE session_id = ? AND created_at >= ? ORDER BY turn DESC LIMIT ?",
                (session_id, self._cutoff(), limit),
            ).fetchall()
        return [Turn(role, content) for role, content in reversed(rows)]

    def append(self, session_id: str, turns: Sequence[Turn]) -> None:
        now = time.time()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading the last turn number
            try:
                (last,) = db.execute(
                    "SELECT COALESCE(MAX(turn), 0) FROM turns WHERE session_id = ?", (session_id,)
                ).fetchone()
                db.executemany(
                    "INSERT INTO turns (session_id, turn, role, content, created_at) VALUES (?, ?, ?, ?, ?)",
                    [(session_id, last + i + 1, t.role, t.content, now) for i, t in enumerate(turns)],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
