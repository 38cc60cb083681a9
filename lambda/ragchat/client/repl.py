"""The interactive chat: streamed replies, the session kept across turns, `/new`,
`/sources`; and the one-shot mode. Works on anything that streams chat events: the HTTP
client (local service or Function URL) or the engine in-process."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ..terminal import shown, shown_json
from .http_client import ClientFailure, StreamEvent

HELP = "/new starts a new session · /sources shows the last answer's sources · /quit (or Ctrl-D) leaves"
StreamTurn = Callable[[str, str | None], Iterator[StreamEvent]]


def source_label(source: dict[str, Any]) -> str:
    """Where a source comes from: its file and CSV row or PDF page, else its file or id."""
    meta = source.get("metadata") or {}
    where = meta.get("source") or source.get("id") or "?"
    if "row" in meta:
        return f"{where} row {meta['row']}"
    if "page" in meta:
        return f"{where} page {meta['page']}"
    return str(where)


def format_sources(sources: list[dict[str, Any]]) -> list[str]:
    lines = []
    for n, source in enumerate(sources, 1):
        where = source_label(source)
        text = " ".join(str(source.get("text", "")).split())
        line = f"  [{n}] {where} (score {source.get('score', 0):.3f}): {text[:160]}{'…' if len(text) > 160 else ''}"
        lines.append(shown(line))
    return lines


def run_repl(
    stream_turn: StreamTurn,
    read: Callable[[str], str] = input,
    out: TextIO | None = None,
    session_id: str | None = None,
    title: str = "",
) -> int:
    out = out or sys.stdout
    last: dict[str, Any] | None = None
    out.write(f"{title}\n{HELP}\n" if title else f"{HELP}\n")
    while True:
        try:
            line = read("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if not line:
            continue
        if line.startswith("/"):
            command = line.split()[0].lower()
            if command in ("/quit", "/exit"):
                return 0
            if command == "/new":
                session_id, last = None, None
                out.write("(new session)\n")
            elif command == "/sources":
                sources = (last or {}).get("sources") or []
                out.write(
                    "\n".join(format_sources(sources)) + "\n" if sources else "(no sources for the last answer)\n"
                )
            else:
                out.write(f"{HELP}\n")
            continue
        out.write("bot> ")
        out.flush()
        try:
            for event in stream_turn(line, session_id):
                if event.kind == "token":
                    out.write(shown(event.data.get("text", "")))
                    out.flush()
                elif event.kind == "done":
                    last = event.data
                    session_id = last.get("session_id", session_id)
                    if last.get("blocked"):
                        out.write(f"\n[blocked by moderation] {shown(last.get('outputs', ''))}")
                    if notice := cut_notice(last):
                        out.write(f" {shown(notice)}")
                    for warning in last.get("warnings") or []:
                        out.write(f"\n(warning: {shown(warning)})")
                    count = len(last.get("sources") or [])
                    out.write(f"\n({count} sources, /sources to show; session {shown(session_id)})\n")
        except ClientFailure as failure:
            out.write(f"\nerror: {shown(failure)}\n")


def cut_notice(result: dict[str, Any]) -> str | None:
    """What to say after a reply the model stopped at the token limit (`finish_reason`
    "length"): without it, a reply ending mid-sentence looks like the model's own end."""
    if result.get("finish_reason") != "length":
        return None
    tokens = (result.get("usage") or {}).get("completion_tokens")
    return (
        f"[cut at {tokens} tokens: raise max_new_tokens]"
        if tokens
        else "[cut at the token limit: raise max_new_tokens]"
    )


def print_json(result: dict[str, Any], out: TextIO | None = None) -> None:
    (out or sys.stdout).write(shown_json(result) + "\n")
