"""Condensing a long source: which sentences stay, and what it costs."""

from doubles import SPOT_ROW, count_words
from ragchat.passages import MAX_PIECES, condense, pieces, sentences, trim_to


def test_pieces_are_sentences_with_their_line():
    assert [(p.line, p.text) for p in pieces(SPOT_ROW)][:3] == [
        (0, "How does Managed Spot Training work?"),
        (1, "Managed Spot Training uses spare EC2 capacity."),
        (1, "It checkpoints your job so that an interruption does not lose work."),
    ]


def test_abbreviations_do_not_end_a_sentence():
    text = "Use a small rate, e.g. 2e-5 for base models. The U.S. East region is cheapest. See Fig. 3 and v. 2."
    assert sentences(text) == [
        "Use a small rate, e.g. 2e-5 for base models.",
        "The U.S. East region is cheapest.",
        "See Fig. 3 and v. 2.",
    ]


def test_other_alphabets_split_too_and_rules_are_dropped():
    assert sentences("Привет. Мир.\n---\n你好。世界。") == ["Привет.", "Мир.", "你好。", "世界。"]


def test_a_fenced_code_block_is_one_piece():
    text = "## Warmup\nSet it in the scheduler:\n```python\nscheduler = make(\n    warmup=500)\n```\nIt avoids it."
    assert sentences(text) == [
        "## Warmup",
        "Set it in the scheduler:",
        "```python\nscheduler = make(\n    warmup=500)\n```",
        "It avoids it.",
    ]


def test_condense_keeps_the_title_then_the_sentences_sharing_the_query_words_in_order():
    short = condense(SPOT_ROW, "does spot save money compared with on-demand", 24, count_words)
    assert short == "How does Managed Spot Training work?\nYou can save up to 90% compared with on-demand instances."
    longer = condense(SPOT_ROW, "does spot save money compared with on-demand capacity", 45, count_words)
    assert longer.startswith("How does Managed Spot Training work?\nManaged Spot Training uses spare EC2 capacity. You")
    assert "save up to 90%" in longer and count_words(longer) <= 45


def test_a_chunk_starting_mid_paragraph_has_no_title_to_keep():
    """A chunk cut from the middle of a section starts with whatever sentence was there: it
    is not kept first unless it matters to the query (an FAQ row's question would be)."""
    chunk = (
        "the optimizer state is restored as well, together with the random seeds and the data loader position. "
        "Note that this holds for v2.0 and later only. "
        "In v1.x the scheduler restarts its warmup when you resume."
    )
    short = condense(chunk, "does resuming restart the warmup in v1.x", 24, count_words)
    assert (
        short
        == "Note that this holds for v2.0 and later only. In v1.x the scheduler restarts its warmup when you resume."
    )


def test_the_best_sentence_is_cut_in_rather_than_passed_over_for_ones_that_share_nothing():
    text = "Spot. " + "Spot pricing " + "detail " * 300 + "ends here. Ok then."
    short = condense(text, "spot pricing", 40, count_words)
    assert "Spot pricing detail" in short and "Ok then." not in short
    assert count_words(short) <= 40


def test_a_code_block_is_kept_whole_or_left_out_never_halved():
    text = "## Warmup\n" + "```python\n" + "x = 1\n" * 40 + "```\nWarmup avoids early divergence in training."
    short = condense(text, "why warmup", 30, count_words)
    assert short.count("```") in (0, 2)
    assert "Warmup avoids early divergence" in short


def test_condense_gives_up_below_a_useful_passage_and_trims_a_text_without_pieces():
    assert condense(SPOT_ROW, "spot", 10, count_words) == ""
    assert condense("x" * 500, "spot", 100, len).endswith("…")


def test_a_hostile_text_of_countless_pieces_costs_a_bounded_number_of_counts():
    calls = []

    def counting(text: str) -> int:
        calls.append(text)
        return count_words(text)

    hostile = "Spot. " + "Ab. " * 100_000
    assert len(pieces(hostile)) == MAX_PIECES
    assert len(pieces("Spot. " + "A. " * 100_000)) == 2  # initials join: one long piece, not 100,000
    condense(hostile, "spot", 64, counting)
    assert len(calls) <= MAX_PIECES + 8


def test_trim_to_prefers_word_boundary():
    assert trim_to("hello wonderful world", 19) == "hello wonderful…"
    assert trim_to("hello wonderful world", 15) == "hello wonderfu…"  # a boundary that far back loses too much
    assert trim_to("short", 10) == "short"
