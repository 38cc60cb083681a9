"""The stop rule, applied to a streamed reply in one pass.

Stop sequences and special tokens are matched with one Aho-Corasick automaton: each
character of the reply costs one step whatever the number of markers, so a request's
stop strings cannot multiply the work done per token."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence


class MarkerAutomaton:
    """Aho-Corasick over a set of markers. A state's depth is the length of the longest
    suffix of the text read so far that begins some marker: exactly what a stream must
    hold back until it knows whether a marker follows."""

    def __init__(self, markers: Sequence[str]) -> None:
        self.goto: list[dict[str, int]] = [{}]
        self.fail: list[int] = [0]
        self.depth: list[int] = [0]
        self.found: list[str | None] = [None]  # the longest marker ending at this state
        for marker in markers:
            self._insert(marker)
        self._link()

    def _insert(self, marker: str) -> None:
        state = 0
        for char in marker:
            nxt = self.goto[state].get(char)
            if nxt is None:
                nxt = len(self.goto)
                self.goto.append({})
                self.fail.append(0)
                self.depth.append(self.depth[state] + 1)
                self.found.append(None)
                self.goto[state][char] = nxt
            state = nxt
        self.found[state] = marker

    def _link(self) -> None:
        queue = deque(self.goto[0].values())
        while queue:
            state = queue.popleft()
            for char, child in self.goto[state].items():
                queue.append(child)
                self.fail[child] = self.step(self.fail[state], char) if state else 0
                if self.found[child] is None:
                    self.found[child] = self.found[self.fail[child]]

    def step(self, state: int, char: str) -> int:
        while state and char not in self.goto[state]:
            state = self.fail[state]
        return self.goto[state].get(char, 0)


class StopFilter:
    """Streams text through a stop rule: pieces are passed on as soon as they cannot be
    the start of a stop sequence; at a stop sequence the stream ends. Special tokens are
    removed, and so is whitespace at either end, so the streamed pieces join to exactly
    the stored reply. Works the same for token streams from any container."""

    def __init__(self, stop: Sequence[str], strip_tokens: Sequence[str] = ()) -> None:
        self.stop = frozenset(s for s in stop if s)
        strip = [s for s in strip_tokens if s and s not in self.stop]
        self._automaton = MarkerAutomaton([*self.stop, *strip])
        self._longest = max((len(m) for m in (*self.stop, *strip)), default=0)
        self._state = 0
        self._pending = ""
        self.stopped = False
        self._started = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        automaton, state = self._automaton, self._state
        pending = [self._pending]
        size = len(self._pending)
        for char in piece:
            pending.append(char)
            size += 1
            state = automaton.step(state, char)
            marker = automaton.found[state]
            if marker is None:
                continue
            text = "".join(pending)[: size - len(marker)]
            if marker in self.stop:
                self._pending, self.stopped = "", True
                return self._started_text(text.rstrip())
            # a special token: drop it, and recover the state of the text before it
            pending, size, state = [text], len(text), 0
            for earlier in text[-self._longest :]:
                state = automaton.step(state, earlier)
        text = "".join(pending)
        # what may begin a marker waits, and so does whitespace before it: before a stop
        # or at the end of the reply it is dropped
        cut = len(text[: len(text) - automaton.depth[state]].rstrip())
        self._pending, self._state = text[cut:], state
        return self._started_text(text[:cut])

    def _started_text(self, out: str) -> str:
        if not self._started:
            out = out.lstrip()
            self._started = bool(out)
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending.rstrip()), ""
        return out if self._started else out.lstrip()

    def feed_all(self, pieces: Iterator[str] | Sequence[str]) -> Iterator[str]:
        for piece in pieces:
            out = self.feed(piece)
            if out:
                yield out
            if self.stopped:
                return
        tail = self.flush()
        if tail:
            yield tail
