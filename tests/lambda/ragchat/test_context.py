from ragchat.context import join_context, select_context, trim_to
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


def test_text_that_does_not_fit_is_skipped_and_later_ones_still_considered():
    chosen = select_context([m("a", "a" * 600), m("b", "b" * 600), m("c", "c" * 100)], budget=1000)
    assert [c.id for c in chosen] == ["a", "c"]


def test_empty_texts_are_ignored_and_nothing_retrieved_gives_nothing():
    assert select_context([], 1000) == []
    assert [c.id for c in select_context([m("a", "   "), m("b", "b")], 1000)] == ["b"]


def test_trim_to_prefers_word_boundary():
    assert trim_to("hello wonderful world", 19) == "hello wonderful…"
    assert trim_to("hello wonderful world", 15) == "hello wonderfu…"  # a boundary that far back loses too much
    assert trim_to("short", 10) == "short"
