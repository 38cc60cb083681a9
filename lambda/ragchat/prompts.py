"""Model profiles: how each chat model wants its prompt, when it must stop, how to clean it.

The engine builds one neutral conversation (instructions, context, history, question);
a profile renders it in the model's own format. Profiles are plain data plus a render
function, so adding a model is one small class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .interfaces import RenderedPrompt, Turn
from .stops import StopFilter

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


def _system_text(context: str, no_answer: bool) -> str:
    if context:
        return f"{INSTRUCTIONS}\n\nCONTEXT:\n{context}"
    return NO_ANSWER_INSTRUCTIONS if no_answer else NO_CONTEXT_INSTRUCTIONS


@dataclass(frozen=True)
class ModelProfile:
    """Prompt format, context window and stop rule of one chat model.

    The retrieved context gets the window's tokens left after the reply (`max_new_tokens`,
    for a decoder whose reply shares the window; an encoder-decoder's does not) and the
    rendered template, less `history_share` of them kept for earlier turns."""

    name: str
    context_window: int
    stop: tuple[str, ...] = ()
    strip_tokens: tuple[str, ...] = ()
    keeps_history: bool = True
    reply_in_window: bool = True
    history_share: float = 0.25

    def render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool = False
    ) -> RenderedPrompt:
        raise NotImplementedError

    def clean(self, text: str) -> str:
        """The reply cut at the first stop sequence, special tokens removed, stripped."""
        return "".join(StopFilter(self.stop, self.strip_tokens).feed_all([text])).strip()


@dataclass(frozen=True)
class OpenChatKitProfile(ModelProfile):
    """GPT-NeoXT-Chat-Base-20B: `<human>:`/`<bot>:` turns after the current date and time;
    the retrieved context is an extra `<human>:` turn just before the question."""

    def render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool = False
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

    def render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool = False
    ) -> RenderedPrompt:
        system = _system_text(context, no_answer)
        messages = [{"role": "system", "content": system}]
        messages += [{"role": t.role, "content": t.content} for t in history]
        messages.append({"role": "user", "content": question})
        return RenderedPrompt(messages=tuple(messages))


@dataclass(frozen=True)
class InstructionProfile(ModelProfile):
    """flan-t5: a single instruction prompt with CONTEXT/QUESTION/ANSWER sections; the
    model has no chat format, so history is not replayed."""

    def render(
        self, question: str, context: str, history: Sequence[Turn], now: datetime, no_answer: bool = False
    ) -> RenderedPrompt:
        if not context and no_answer:
            return RenderedPrompt(text=f"{NO_ANSWER_INSTRUCTIONS}\n\nQUESTION:\n{question}\n\nANSWER:\n")
        return RenderedPrompt(text=f"{INSTRUCTIONS}\n\nCONTEXT:\n{context}\n\nQUESTION:\n{question}\n\nANSWER:\n")


PROFILES: dict[str, ModelProfile] = {
    "gpt-neoxt-chat": OpenChatKitProfile(
        name="gpt-neoxt-chat",
        context_window=2048,
        stop=("<human>", "</s>", "<|endoftext|>"),
        strip_tokens=("<pad>",),
    ),
    "llama-2-chat": ChatMessagesProfile(name="llama-2-chat", context_window=4096, stop=("</s>",)),
    # flan-t5 was trained on 512-token inputs: the stack lets TGI take 3072 (T5's relative
    # positions allow it), but answers degrade past what it was trained on, so the prompt
    # is budgeted at 512. Encoder-decoder: the reply does not share the input window.
    "flan-t5": InstructionProfile(
        name="flan-t5",
        context_window=512,
        stop=("</s>",),
        strip_tokens=("<pad>",),
        keeps_history=False,
        reply_in_window=False,
    ),
    "smollm2-local": ChatMessagesProfile(name="smollm2-local", context_window=2048, stop=("<|im_end|>",)),
}


def get_profile(name: str) -> ModelProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown model profile {name!r}; choose one of {sorted(PROFILES)}") from None


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
