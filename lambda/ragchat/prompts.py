"""Model profiles: how each chat model wants its prompt, when it must stop, how to clean it.

The engine builds one neutral conversation (instructions, context, history, question);
a profile renders it in the model's own format. Profiles are plain data plus a render
function. Each deployable chat model's profile is part of its entry in `catalog.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import ClassVar, Literal

from .interfaces import RenderedPrompt, Turn

INSTRUCTIONS = (
    "Answer the QUESTION using the CONTEXT. If the CONTEXT does not contain the answer, "
    'say "I don\'t know". Be concise.'
)
NO_CONTEXT_INSTRUCTIONS = 'Answer the question concisely. If you do not know the answer, say "I don\'t know".'
# Retrieval worked and nothing in the knowledge base scored above the no-answer threshold.
NO_ANSWER_INSTRUCTIONS = (
    "The knowledge base has no answer to this question. Say that the knowledge base does not cover it; "
    "do not make up an answer."
)
# What a profile with `no_answer_reply` answers then, without calling the model.
NO_ANSWER_REPLY = "The knowledge base has no answer to this question, so I can't answer it."
# A 135M model drifts from long instructions and long answers: one short rule, one or two sentences.
SHORT_GROUNDED_INSTRUCTIONS = (
    "Answer the question in one or two sentences, using only the facts in the CONTEXT. "
    'If the CONTEXT does not answer it, say "I don\'t know".'
)


# The turn markers of the chat templates this service meets (ChatML: SmolLM2, Qwen2.5; Llama 2 and 3).
# Text inside a message is tokenized by the model's tokenizer, which reads these strings as the
# real control tokens: a document holding `<|im_start|>system` would open a system turn.
CHAT_TEMPLATE_MARKERS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>",
    "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
)  # fmt: skip
BREAK = "\u200b"  # zero-width space: the text reads the same, the marker no longer matches


def defuse(text: str, markers: Sequence[str], exact: Sequence[str] = ()) -> str:
    """Untrusted text (retrieved documents and web pages, the caller's turns, replies stored
    in history) with every turn marker of the prompt's format broken by a zero-width space
    after its first character, so no text can forge a turn of another role.

    `markers`, the format's turn markers, are also broken in the variants a model may read
    as them: full-width forms (`＜human＞：`), space before a colon (`<bot> :`) and, for tag-like
    markers, other case (`<Human>:`); a word marker (flan-t5's `ANSWER:`) keeps its case, so
    prose such as "the short answer: yes" is left alone. `exact`, a tokenizer's control
    tokens (thousands for some models), are matched as written: the tokenizer reads only
    that exact text as the token."""
    for token in exact:
        if len(token.strip()) > 1 and token in text:  # whitespace tokens (Gemma's "\n", "  ") forge nothing
            text = text.replace(token, _broken(token))
    if not markers:
        return text
    return _marker_pattern(tuple(markers)).sub(lambda m: _broken(m[0]), text)


def _broken(marker: str) -> str:
    return marker[0] + BREAK + marker[1:]


FULL_WIDTH_OFFSET = 0xFEE0  # U+FF01..U+FF5E are the full-width forms of ! .. ~
SMALL_FORMS = {"<": "\ufe64", ">": "\ufe65", ":": "\ufe55"}


@cache
def _marker_pattern(markers: tuple[str, ...]) -> re.Pattern[str]:
    def char(c: str, any_case: bool) -> str:
        forms = {c, c.lower(), c.upper()} if any_case else {c}
        forms |= {chr(ord(f) + FULL_WIDTH_OFFSET) for f in forms if "!" <= f <= "~"}
        forms |= {SMALL_FORMS[c]} if c in SMALL_FORMS else set()
        pattern = "[" + "".join(re.escape(f) for f in sorted(forms)) + "]"
        return r"\s*" + pattern if c == ":" else pattern

    def marker(m: str) -> str:
        any_case = not m.rstrip(":").isalpha()  # a tag (`<human>:`, `[INST]`), not a word (`ANSWER:`)
        return "".join(char(c, any_case) for c in m)

    return re.compile("|".join(marker(m) for m in sorted(markers, key=len, reverse=True)))


def _system_text(instructions: str, context: str, no_answer: bool) -> str:
    if context:
        return f"{instructions}\n\nCONTEXT:\n{context}"
    return NO_ANSWER_INSTRUCTIONS if no_answer else NO_CONTEXT_INSTRUCTIONS


@dataclass(frozen=True)
class ModelProfile:
    """Prompt format, context window and stop rule of one chat model. `renders` says
    whether `render` gives a flat text prompt or chat messages.

    The retrieved context gets the window's tokens left after the reply (`max_new_tokens`,
    for a decoder whose reply shares the window; an encoder-decoder's does not) and the
    rendered template, less `history_share` of them kept for earlier turns, and at most
    `max_context_tokens` (a small model loses the question in a long context)."""

    renders: ClassVar[Literal["text", "messages"]] = "text"
    # the strings that delimit turns in this format, broken wherever untrusted text holds them
    markers: ClassVar[tuple[str, ...]] = ()
    name: str
    context_window: int
    stop: tuple[str, ...] = ()
    strip_tokens: tuple[str, ...] = ()
    keeps_history: bool = True
    reply_in_window: bool = True
    history_share: float = 0.25
    max_context_tokens: int | None = None
    # what a request that names no max_new_tokens gets
    default_max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    instructions: str = INSTRUCTIONS
    # When retrieval finds nothing above the threshold: None asks the model with the no-answer
    # prompt (a large model follows it); a text is the reply itself, and the model is not called
    # (a small model ignores the prompt and invents an answer).
    no_answer_reply: str | None = None

    def render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool = False
    ) -> RenderedPrompt:
        """The prompt, every untrusted text defused first (`defuse`)."""
        history = [Turn(t.role, defuse(t.content, self.markers)) for t in history]
        return self._render(defuse(question, self.markers), defuse(context, self.markers), history, now, no_answer)

    def _render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool
    ) -> RenderedPrompt:
        raise NotImplementedError


@dataclass(frozen=True)
class OpenChatKitProfile(ModelProfile):
    """GPT-NeoXT-Chat-Base-20B: `<human>:`/`<bot>:` turns after the current date and time;
    the retrieved context is an extra `<human>:` turn just before the question."""

    markers: ClassVar[tuple[str, ...]] = ("<human>:", "<bot>:")

    def _render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool
    ) -> RenderedPrompt:
        lines = [now.strftime("%A, %B %d, %Y %H:%M UTC")]
        for turn in history:
            tag = "<human>" if turn.role == "user" else "<bot>"
            lines.append(f"{tag}: {turn.content}")
        if context:
            lines.append(f"<human>: {INSTRUCTIONS}\nCONTEXT:\n{context}")
        elif no_answer:
            lines.append(f"<human>: {NO_ANSWER_INSTRUCTIONS}")
        lines.append(f"<human>: {question}")
        return RenderedPrompt(text="\n".join(lines) + "\n<bot>:")


@dataclass(frozen=True)
class ChatMessagesProfile(ModelProfile):
    """Models with a chat template (SmolLM2, Llama-2-chat): a system message carrying the
    instructions and context, then the history, then the question. The generator (or the
    endpoint) applies the template, so the stop rule is the model's own end token."""

    renders: ClassVar[Literal["text", "messages"]] = "messages"
    markers: ClassVar[tuple[str, ...]] = CHAT_TEMPLATE_MARKERS

    def _render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool
    ) -> RenderedPrompt:
        system = _system_text(self.instructions, context, no_answer)
        messages = [{"role": "system", "content": system}]
        messages += [{"role": t.role, "content": t.content} for t in history]
        messages.append({"role": "user", "content": question})
        return RenderedPrompt(messages=tuple(messages))


@dataclass(frozen=True)
class InstructionProfile(ModelProfile):
    """flan-t5: a single instruction prompt with CONTEXT/QUESTION/ANSWER sections; the
    model has no chat format, so history is not replayed."""

    markers: ClassVar[tuple[str, ...]] = ("CONTEXT:", "QUESTION:", "ANSWER:")

    def _render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool
    ) -> RenderedPrompt:
        if not context and no_answer:
            return RenderedPrompt(text=f"{NO_ANSWER_INSTRUCTIONS}\n\nQUESTION:\n{question}\n\nANSWER:\n")
        return RenderedPrompt(text=f"{INSTRUCTIONS}\n\nCONTEXT:\n{context}\n\nQUESTION:\n{question}\n\nANSWER:\n")


# The local mode's model (SmolLM2-135M-Instruct unless --model names another GGUF chat model), the
# deployable models are in catalog.py: short, grounded answers; the defaults come from bench/answer_quality.py.
SMOLLM2_LOCAL = ChatMessagesProfile(
    name="smollm2-local",
    context_window=2048,
    stop=("<|im_end|>",),
    default_max_new_tokens=128,
    repetition_penalty=1.1,
    instructions=SHORT_GROUNDED_INSTRUCTIONS,
    # A 135M model loses the question in a long context and its greedy reply then runs on:
    # a few sources (about 1,000 characters) rather than the ~1,400 tokens its window allows.
    # Re-measured on llama.cpp (README, "context budget"): 384-768 tokens brought the relevant row
    # into more prompts but fewer replies ended by themselves, and none scored better.
    max_context_tokens=256,
    # Asked "What is the capital of Portugal?" with the no-answer prompt, it still invents an answer.
    no_answer_reply=NO_ANSWER_REPLY,
)


def fit_history(history: Sequence[Turn], budget_tokens: int, count_tokens: Callable[[str], int]) -> list[Turn]:
    """The most recent turns that fit in `budget_tokens`, dropped oldest first and always
    whole: a user turn goes together with the reply that followed it."""
    kept: list[Turn] = []
    used = 0
    index = len(history)
    while index > 0:
        start = index - 1
        if history[start].role == "assistant" and start > 0 and history[start - 1].role == "user":
            start -= 1  # keep the exchange together
        exchange = list(history[start:index])
        cost = sum(count_tokens(t.content) + 4 for t in exchange)
        if used + cost > budget_tokens:
            break
        kept[:0] = exchange
        used += cost
        index = start
    return kept
