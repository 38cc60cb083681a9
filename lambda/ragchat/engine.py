"""The chat engine: one user turn from question to stored answer, the same locally and in
the Lambda. It knows only the interfaces in `interfaces.py`."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as TokenStream
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .admission import DeadlineExceeded, GenerationQueue, RequestCancelled
from .context import MIN_CONTEXT_TOKENS, context_budget, join_context, select_context
from .errors import InputTooLong, RetrievalUnavailable
from .interfaces import (
    ConversationStore,
    Embedder,
    FinishReason,
    GenerationParams,
    GenerationReport,
    Generator,
    Match,
    ModerationResult,
    Moderator,
    RenderedPrompt,
    Retriever,
    Turn,
    Usage,
    VectorIndex,
)
from .prompts import ModelProfile, defuse, fit_history
from .retrieval import (
    FOLLOWUP_TURNS,
    LEXICAL_WEIGHT,
    MIN_SCORE,
    TOP_K,
    HybridRetriever,
    above_threshold,
    retrieval_query,
)
from .stops import StopFilter

log = logging.getLogger(__name__)

REFUSAL = "Unfortunately I am unable to provide any information about this topic"
# What the caller is told when retrieval fails. The cause (which may name the secret's ARN,
# the index or how to fix it) is for the operator: it goes to the log only.
RETRIEVAL_WARNING = "retrieval unavailable, answered without retrieved context"
MIN_REPLY_TOKENS = 32  # a question must leave the model room to say at least this much
# A streamed reply is moderated and released at each sentence end (or line break), or every
# RELEASE_CHARS characters when a sentence runs long.
SENTENCE_END = re.compile(r"[.!?。！？][\"')\]]*\s|\n")
RELEASE_CHARS = 400


@dataclass(frozen=True)
class EngineSettings:
    """Retrieval: `retrieval_top_k` candidates, ranked by dense + `lexical_weight` x BM25
    (by the default retriever), none kept when the best scores under `min_score` (the
    no-answer threshold, in the retriever's scores), follow-ups looked up with
    `followup_turns` earlier user turns. The context budget is derived from the model
    profile unless `context_budget_tokens` sets it."""

    context_budget_tokens: int | None = None
    retrieval_top_k: int = TOP_K
    lexical_weight: float = LEXICAL_WEIGHT
    min_score: float = MIN_SCORE
    followup_turns: int = FOLLOWUP_TURNS
    # Context is optional: past this deadline (a slow or retrying index) answer without it.
    retrieval_timeout_seconds: float = 5.0
    namespace: str = ""
    history_limit: int = 50
    refusal: str = REFUSAL
    # Replies wait for the model in one FIFO line: at most `queue_limit` waiting (None: no
    # bound; beyond it 503), each request done within `deadline_seconds` of arriving
    # (queue wait + generation; None: no deadline; past it 504).
    queue_limit: int | None = None
    deadline_seconds: float | None = None
    # A buffered answer is generated in one call (a remote model answers at once); a local
    # model streams anyway, so that a cancelled or late request stops at the next token.
    buffered_generation: bool = True


@dataclass(frozen=True)
class ChatRequest:
    """A validated user turn. With `history` given (OpenAI-style), the conversation comes
    from the caller and nothing is stored."""

    inputs: str
    params: GenerationParams = GenerationParams()
    session_id: str | None = None
    no_retrieval: bool = False
    history: Sequence[Turn] | None = None
    # Whose conversations these are (on AWS, the IAM caller): a session id names a
    # conversation only within its owner's, so nobody reads or extends another's.
    owner: str = ""
    # Release a streamed reply a sentence at a time, each piece only once output moderation has
    # passed the reply so far, for clients that cannot take text back (OpenAI's stream format
    # has no way to); otherwise tokens go out as generated and a blocked reply is replaced at
    # the end (`/chat`: its page and CLI replace it).
    moderated_release: bool = False
    # Set when nobody waits for the answer any more (client gone, server stopping).
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass
class ChatResult:
    outputs: str
    session_id: str
    sources: list[Match]
    moderation: dict[str, Any]
    blocked: bool = False
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()

    def as_dict(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "session_id": self.session_id,
            "sources": [m.as_source() for m in self.sources],
            "moderation": self.moderation,
            # true when moderation refused the question or withdrew the reply (`outputs` is then the
            # refusal; a streamed reply's tokens were already sent, so clients say it was withdrawn)
            "blocked": self.blocked,
            "warnings": self.warnings,
            "timings_ms": self.timings_ms,
            # "length": cut at max_new_tokens (a refusal is a whole reply: "stop")
            "finish_reason": "stop" if self.blocked else self.finish_reason,
            "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens},
        }


@dataclass(frozen=True)
class Token:
    """A piece of the reply, streamed as soon as it is safe to show."""

    text: str


def conversation_key(owner: str, session_id: str) -> str:
    """The store's key for a session: the session id within its owner's namespace
    (`#` appears in neither IAM ARNs nor session ids); without an owner, the id itself."""
    return f"{owner}#{session_id}" if owner else session_id


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class ChatEngine:
    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        generator: Generator,
        moderator: Moderator,
        store: ConversationStore,
        profile: ModelProfile,
        settings: EngineSettings = EngineSettings(),
        observer: Callable[[ChatResult], None] | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        if retriever is None:
            if embedder is None or index is None:
                raise ValueError("give a retriever, or an embedder and a vector index")
            retriever = HybridRetriever(embedder, index, settings.lexical_weight, settings.namespace)
        self.retriever = retriever
        self.embedder = embedder
        self.index = index
        self.generator = generator
        self.moderator = moderator
        self.store = store
        self.profile = profile
        self.settings = settings
        self.observer = observer  # sees every finished turn: metrics and logs in the Lambda
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragchat")
        self.queue = GenerationQueue(settings.queue_limit)

    # -- retrieval ---------------------------------------------------------------------
    def query_text(self, question: str, history: Sequence[Turn] = ()) -> str:
        """What is looked up: the question, with the previous user turn(s) for a follow-up."""
        return retrieval_query(question, history, self.settings.followup_turns)

    def ranked(self, question: str, history: Sequence[Turn] = (), top_k: int | None = None) -> list[Match]:
        """The best matches for a turn, before the no-answer threshold."""
        return self.retriever.search(self.query_text(question, history), top_k or self.settings.retrieval_top_k)

    def retrieve(self, query: str, top_k: int | None = None, history: Sequence[Turn] = ()) -> list[Match]:
        """The matches that may become context, best first: none when even the best scores
        under the no-answer threshold."""
        return above_threshold(self.ranked(query, history, top_k), self.settings.min_score)

    def context_budget(self, question: str, params: GenerationParams) -> int:
        """The context's share of the window in the model's tokens (`context.context_budget`),
        unless the settings fix it."""
        if self.settings.context_budget_tokens is not None:  # never below the derived budget's floor
            return max(self.settings.context_budget_tokens, MIN_CONTEXT_TOKENS)
        return context_budget(self.profile, question, params.max_new_tokens, self.generator.count_tokens)

    def defused(self, text: str) -> str:
        """Untrusted text as the model will read it: the prompt format's turn markers and the
        model's own control tokens broken (`prompts.defuse`). Done before anything is counted,
        since a broken marker takes several tokens where the whole one took one."""
        return defuse(text, self.profile.markers, exact=getattr(self.generator, "control_texts", ()))

    def select_sources(
        self, question: str, matches: Sequence[Match], params: GenerationParams, history: Sequence[Turn] = ()
    ) -> list[Match]:
        """The matches placed in the prompt: as many as the context budget holds, long ones
        condensed to the sentences that share the words looked up."""
        matches = [replace(m, text=self.defused(m.text)) for m in matches]
        budget = self.context_budget(question, params)
        query = self.query_text(question, history)
        return select_context(matches, budget, self.generator.count_tokens, separator_cost=1, query=query)

    def lookup(
        self,
        question: str,
        history: Sequence[Turn] = (),
        params: GenerationParams | None = None,
        top_k: int | None = None,
    ) -> tuple[list[Match], list[Match]]:
        """What retrieval makes of a turn, for debugging and `ragchat eval`: the ranked
        matches before the no-answer threshold, and the sources the prompt would get."""
        ranked = self.ranked(question, history, top_k)
        passed = above_threshold(ranked, self.settings.min_score)
        return ranked, self.select_sources(question, passed, params or GenerationParams(), history)

    # -- one turn ----------------------------------------------------------------------
    def chat(self, request: ChatRequest) -> ChatResult:
        """The buffered answer: the stream, consumed, with the reply generated in one call."""
        for event in self.stream(request, buffered=True):
            if isinstance(event, ChatResult):
                return event
        raise RuntimeError("chat stream ended without a result")  # pragma: no cover

    def stream(self, request: ChatRequest, buffered: bool = False) -> Iterator[Token | ChatResult]:
        """Yields reply pieces as they are generated, then the final ChatResult."""
        started = time.perf_counter()
        deadline = None if self.settings.deadline_seconds is None else time.monotonic() + self.settings.deadline_seconds
        timings: dict[str, float] = {}
        warnings: list[str] = []
        question = self.defused(request.inputs)  # what the prompt holds; retrieval and the store get the original
        self.check_fits(question, request.params)
        session_id = request.session_id or str(uuid.uuid4())
        stateless = request.history is not None

        conversation = conversation_key(request.owner, session_id)
        t = time.perf_counter()
        history = list(request.history) if stateless else self.store.load(conversation, self.settings.history_limit)
        history = [Turn(t.role, self.defused(t.content)) for t in history]
        timings["history"] = _ms(t)

        now = datetime.now(UTC)
        # a caller's own history is checked whole; a stored session's previous question(s) go with the
        # new one, so a request split over two turns is read as one (each was checked alone when sent)
        earlier = history if stateless else [t for t in history if t.role == "user"][-self.settings.followup_turns :]
        checked = self.caller_text(request.inputs, earlier, request.params, now)
        input_check = self._pool.submit(self._timed, self.moderator.check, checked)
        matches: list[Match] = []
        retrieved = False  # the lookup answered: empty matches then mean "no answer in the knowledge base"
        if not request.no_retrieval:
            t = time.perf_counter()
            lookup = self._pool.submit(self.retrieve, request.inputs, None, history)
            try:
                matches = lookup.result(timeout=self.settings.retrieval_timeout_seconds)
                retrieved = True
            except RetrievalUnavailable as exc:
                log.warning("retrieval unavailable, answering without context: %s", exc)
                warnings.append(RETRIEVAL_WARNING)
            except FuturesTimeout:
                limit = self.settings.retrieval_timeout_seconds
                log.warning("retrieval took over %ss, answering without context", limit)
                warnings.append(RETRIEVAL_WARNING)
            timings["retrieval"] = _ms(t)
        input_verdict, timings["moderation_input"] = input_check.result()
        moderation: dict[str, Any] = {"input": input_verdict.as_dict()}

        if input_verdict.flagged:
            timings["total"] = _ms(started)
            yield self._finished(ChatResult(self.settings.refusal, session_id, [], moderation, True, warnings, timings))
            return

        sources = self.select_sources(question, matches, request.params, history)
        no_answer = retrieved and not sources
        held, verdict = "", None  # the reply's unreleased end; a verdict reached while streaming
        if no_answer and self.profile.no_answer_reply is not None:
            # the profile's fixed reply: its model would invent an answer to the no-answer prompt
            reply, finish, usage = self.profile.no_answer_reply, "stop", Usage(0, 0)
            held = reply
        else:
            context = join_context(sources)
            prompt = self.build_prompt(question, context, history, request.params, now, no_answer)
            gate = self._moderation_gate(request, buffered, timings)
            reply, finish, usage, held, verdict = yield from self._generate(
                prompt, request, deadline, buffered, timings, gate
            )

        if verdict is None:
            verdict, spent = self._timed(self.moderator.check, reply)
            timings["moderation_output"] = timings.get("moderation_output", 0.0) + spent
        output_verdict = verdict
        moderation["output"] = output_verdict.as_dict()
        blocked = output_verdict.flagged
        if held and not blocked:
            yield Token(held)
        answer = self.settings.refusal if blocked else reply

        if not stateless:
            t = time.perf_counter()
            self.store.append(conversation, [Turn("user", request.inputs), Turn("assistant", answer)])
            timings["store"] = _ms(t)
        timings["total"] = _ms(started)
        result = ChatResult(answer, session_id, sources, moderation, blocked, warnings, timings, finish, usage)
        yield self._finished(result)

    def _generate(
        self,
        prompt: RenderedPrompt,
        request: ChatRequest,
        deadline: float | None,
        buffered: bool,
        timings: dict[str, float],
        gate: Callable[[str], ModerationResult] | None = None,
    ) -> TokenStream[Token, None, tuple[str, FinishReason, Usage, str, ModerationResult | None]]:
        """The model's reply, streamed as tokens: (reply, finish reason, usage, the end not yet
        released, and the verdict that stopped it, if one did). With a `gate`, text is held back
        until a sentence ends, then released only if the gate passes the reply so far; a flagged
        reply stops the model at once."""
        pieces: list[str] = []
        held, released, verdict = "", "", None
        stop_filter = StopFilter(self.profile.stop + request.params.stop, self.profile.strip_tokens)
        report = GenerationReport()
        gen_params = replace(
            request.params,
            stop=self.profile.stop + request.params.stop,
            repetition_penalty=self.profile.repetition_penalty,
            report=report,
        )
        t = time.perf_counter()
        with self.queue.turn(request.cancel, deadline):
            timings["queue"] = _ms(t)
            t = time.perf_counter()
            if buffered and self.settings.buffered_generation:
                raw: Iterator[str] = iter([self.generator.generate(prompt, gen_params)])
            else:
                raw = self.generator.stream(prompt, gen_params)
            try:
                for piece in stop_filter.feed_all(raw):
                    self._still_wanted(request, deadline)
                    pieces.append(piece)
                    if gate is None:
                        yield Token(piece)
                        continue
                    held += piece
                    ends = [m.end() for m in SENTENCE_END.finditer(held)]
                    if not ends and len(held) < RELEASE_CHARS:
                        continue
                    cut = ends[-1] if ends else len(held)  # whole sentences; the next one's start waits
                    release, held = held[:cut], held[cut:]
                    # the new sentences with the last released ones as context: linear in the reply
                    # (the whole reply is checked once more at the end, as a buffered one is)
                    checked = gate(released + release)
                    if checked.flagged:
                        verdict = checked
                        break
                    yield Token(release)
                    released = release
            finally:
                close = getattr(raw, "close", None)
                if close is not None:
                    close()  # stopped here: the model stops now (not when collected), and files its report
        reply = "".join(pieces).strip()
        timings["generation"] = _ms(t)
        finish: FinishReason = "stop" if stop_filter.stopped else report.finish_reason or "stop"
        usage = self._usage(report, prompt, reply)
        return reply, finish, usage, held, verdict

    def _moderation_gate(
        self, request: ChatRequest, buffered: bool, timings: dict[str, float]
    ) -> Callable[[str], ModerationResult] | None:
        """What checks a streamed reply before each release: output moderation, timed into
        `moderation_output` (None: nothing to check, or tokens go out as generated)."""
        if buffered or not request.moderated_release or getattr(self.moderator, "provider", "") == "off":
            return None

        def gate(text: str) -> ModerationResult:
            verdict, spent = self._timed(self.moderator.check, text)
            timings["moderation_output"] = timings.get("moderation_output", 0.0) + spent
            return verdict

        return gate

    def _usage(self, report: GenerationReport, prompt: RenderedPrompt, reply: str) -> Usage:
        """The generator's own token counts, or the engine's estimate where it has none."""
        prompt_tokens = report.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = self.generator.count_tokens(prompt.describe())
        completion_tokens = report.completion_tokens
        if completion_tokens is None:
            completion_tokens = self.generator.count_tokens(reply)
        return Usage(prompt_tokens, completion_tokens)

    @staticmethod
    def _still_wanted(request: ChatRequest, deadline: float | None) -> None:
        if request.cancel.is_set():
            raise RequestCancelled("the request was cancelled during generation", step="generation")
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded("the reply was not finished before the request's deadline", step="generation")

    def shutdown(self) -> None:
        """Stop serving now: queued and running requests are cancelled, new ones refused."""
        self.queue.close()

    def close(self) -> None:
        """Waits for lookups that outlived their deadline, so none runs on after shutdown."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _finished(self, result: ChatResult) -> ChatResult:
        if self.observer is not None:
            try:
                self.observer(result)
            except Exception:  # an observer (metrics, logs) must never fail a turn
                log.exception("chat observer failed")
        return result

    # -- prompt ------------------------------------------------------------------------
    def check_fits(self, question: str, params: GenerationParams) -> None:
        """Refuse (400 naming the field) a question that, rendered alone, leaves the model's
        window no room for the smallest context and a short reply; it would fail at the model."""
        base = self.profile.render(question, "", [], datetime.now(UTC), False)
        taken = self.generator.count_tokens(base.describe())
        room = self.profile.context_window - MIN_CONTEXT_TOKENS - MIN_REPLY_TOKENS
        if taken > room:
            raise InputTooLong(
                f"the question and the prompt's template take {taken} of the model's {self.profile.context_window} "
                f"tokens; at most {room} leave room for the context and a reply: shorten the question"
            )

    def build_prompt(
        self,
        question: str,
        context: str,
        history: Sequence[Turn],
        params: GenerationParams,
        now: datetime | None = None,
        no_answer: bool = False,
    ) -> RenderedPrompt:
        """Render the profile's prompt with as much recent history as the window allows."""
        now = now or datetime.now(UTC)
        kept = self._fit_history(question, context, history, params, now, no_answer)
        return self.profile.render(question, context, kept, now, no_answer)

    def caller_text(
        self, question: str, supplied_history: Sequence[Turn], params: GenerationParams, now: datetime
    ) -> str:
        """What input moderation checks: the question and every turn of caller-supplied
        history (OpenAI `messages`, whatever their role) that can reach the prompt, as
        one text. History fitted without context is a superset of what the prompt keeps
        once context takes its share. A stored session passes its previous question(s) only:
        each stored turn was checked when it was sent, and a request split over two turns is
        read as one."""
        kept = self._fit_history(question, "", supplied_history, params, now)
        return "\n\n".join([*(turn.content for turn in kept), question])

    def _fit_history(
        self,
        question: str,
        context: str,
        history: Sequence[Turn],
        params: GenerationParams,
        now: datetime,
        no_answer: bool = False,
    ) -> list[Turn]:
        if not self.profile.keeps_history or not history:
            return []
        base = self.profile.render(question, context, [], now, no_answer)
        budget = self.profile.context_window - params.max_new_tokens - self.generator.count_tokens(base.describe())
        return fit_history(history, max(budget, 0), self.generator.count_tokens)

    @staticmethod
    def _timed(fn: Any, arg: str) -> tuple[ModerationResult, float]:
        t = time.perf_counter()
        return fn(arg), _ms(t)
