import random

from doubles import SPOT_ROW, count_words
from ragchat.context import join_context, select_context
from ragchat.interfaces import Match


def m(i: str, text: str) -> Match:
    return Match(i, 1.0, text, {})


def test_joins_in_rank_order_within_budget():
    chosen = select_context([m("a", "  alpha  "), m("b", "beta")], budget=100)
    assert [c.id for c in chosen] == ["a", "b"]
    assert join_context(chosen) == "alpha\nbeta"


def test_each_text_counts_its_length_plus_two():
    # 10 + 2 and 8 + 2 is exactly 22: both fit; one more character does not.
    assert len(select_context([m("a", "x" * 10), m("b", "y" * 8)], budget=22)) == 2
    assert [c.id for c in select_context([m("a", "x" * 10), m("b", "y" * 9)], budget=22)] == ["a"]


def test_long_top_hit_is_trimmed_not_dropped():
    """The original stopped at the first text that did not fit: an empty context."""
    chosen = select_context([m("long", "word " * 400), m("short", "short answer")], budget=1000)
    assert chosen[0].id == "long"
    assert len(chosen[0].text) <= 998
    assert chosen[0].text.endswith("…")
    assert sum(len(c.text) + 2 for c in chosen) <= 1000


def test_a_text_that_does_not_fit_is_cut_to_what_is_left_or_skipped_when_that_is_too_little():
    # source_share 1: the old whole-budget rule. "b" is cut to the 396 characters left
    chosen = select_context([m("a", "a" * 600), m("b", "b" * 600), m("c", "c" * 100)], budget=1000, source_share=1)
    assert [c.id for c in chosen] == ["a", "b"]
    assert len(chosen[1].text) == 396
    # with fewer than MIN_PASSAGE_TOKENS left, a later text is skipped, and a shorter one still fits
    chosen = select_context([m("a", "a" * 980), m("b", "b" * 100), m("c", "c" * 10)], budget=1000, source_share=1)
    assert [c.id for c in chosen] == ["a", "c"]


def test_a_tight_budget_holds_several_condensed_sources_instead_of_one_whole():
    rows = [m(f"r{i}", SPOT_ROW.replace("Spot", f"Spot{i}")) for i in range(3)]
    budget = len(SPOT_ROW) + 100  # in characters: one row whole, not two
    chosen = select_context(rows, budget, query="save money")
    assert [c.id for c in chosen] == ["r0", "r1", "r2"]
    assert all(c.text.endswith("You can save up to 90% compared with on-demand instances.") for c in chosen)
    # one source may take the whole budget: the top row goes in whole and crowds out the third
    whole_first = select_context(rows, budget, query="save money", source_share=1)
    assert [c.id for c in whole_first] == ["r0", "r1"] and whole_first[0].text == rows[0].text


def test_budget_left_over_goes_back_to_the_condensed_sources():
    """A doc chunk longer than a third of the budget, retrieved alone (or with one short
    neighbour), keeps as much of itself as the budget holds, not a third."""
    chunk = "## Fine-tuning\n" + " ".join(f"Step {i} sets option number {i} for you." for i in range(30))
    chunk += " We recommend a small learning rate, e.g. 2e-5 for base models."
    alone = select_context([m("a", chunk)], 256, count_words, 1, "learning rate")
    assert count_words(alone[0].text) > 200 and "e.g. 2e-5 for base models." in alone[0].text
    pair = select_context([m("a", chunk), m("b", "Short tip.")], 256, count_words, 1, "learning rate")
    assert [c.id for c in pair] == ["a", "b"] and sum(count_words(c.text) + 1 for c in pair) > 200


def test_the_sources_never_cost_more_than_the_budget():
    rng = random.Random(7)
    words = ["spot", "training", "save", "money", "model", "endpoint.", "data.", "Why?", "the", "cost!"]
    for _ in range(300):
        texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 120))) for _ in range(rng.randint(1, 6))]
        budget = rng.randint(64, 200)
        chosen = select_context([m(str(i), t) for i, t in enumerate(texts)], budget, count_words, 1, "save money")
        assert sum(count_words(c.text) + 1 for c in chosen) <= budget
        assert chosen or not any(t.strip() for t in texts)  # something retrieved: never an empty context
        assert not chosen or chosen[0].id == next(str(i) for i, t in enumerate(texts) if t.strip())  # top hit first


def test_a_count_that_is_not_additive_still_keeps_the_budget():
    """Token counts are not additive: here a newline costs 5, so the condensed row (its
    question, a newline, its sentences) costs more than its sentences counted apart."""

    def costly_newlines(text: str) -> int:
        return len(text.split()) + 5 * text.count("\n")

    long_row = SPOT_ROW + " " + " ".join(f"Spot fact {i} is here." for i in range(40))
    for budget in range(64, 200):
        chosen = select_context([m("a", long_row), m("b", long_row)], budget, costly_newlines, 1, "save money")
        assert chosen and sum(costly_newlines(c.text) + 1 for c in chosen) <= budget


def test_empty_texts_are_ignored_and_nothing_retrieved_gives_nothing():
    assert select_context([], 1000) == []
    assert [c.id for c in select_context([m("a", "   "), m("b", "b")], 1000)] == ["b"]
