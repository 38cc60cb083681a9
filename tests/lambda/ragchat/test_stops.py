"""The stop rule on streamed text: the same reply whatever the split, cut where the
first stop sequence ends, in one pass over the reply."""

import random

import pytest

from ragchat.stops import MarkerAutomaton, StopFilter


def reference_cut(text: str, stops: list[str]) -> str:
    """The reply a whole-text reader keeps: up to the stop sequence completed first."""
    for end in range(1, len(text) + 1):
        done = [s for s in stops if text[:end].endswith(s)]
        if done:
            return text[: end - max(len(s) for s in done)].strip()
    return text.strip()


def test_stop_filter_matches_the_whole_text_rule_for_any_split():
    rng = random.Random(7)
    for _ in range(400):
        stops = ["".join(rng.choices("ab c", k=rng.randint(1, 4))) for _ in range(rng.randint(1, 4))]
        text = "".join(rng.choices("abc \n", k=rng.randint(0, 40)))
        pieces, rest = [], text
        while rest:
            size = rng.randint(1, 6)
            pieces.append(rest[:size])
            rest = rest[size:]
        assert "".join(StopFilter(stops).feed_all(pieces)) == reference_cut(text, stops), (stops, pieces)


@pytest.mark.parametrize("split", [1, 2, 3, 4, 6])
def test_special_tokens_are_removed_and_the_reply_cut_at_the_stop(split):
    text = "Yes.<pad> All<pad><pad> good.<pad>\n<human>: next"
    pieces = [text[i : i + split] for i in range(0, len(text), split)]
    assert "".join(StopFilter(["<human>"], ["<pad>"]).feed_all(pieces)) == "Yes. All good."


def test_holds_back_only_what_could_begin_a_stop_sequence():
    f = StopFilter(["</s>", "<human>", "STOP"])
    assert f.feed("Hello <") == "Hello"
    assert f.feed("b>") == " <b>"
    assert f.feed(" ST") == ""
    assert f.feed("OP and more") == ""
    assert f.stopped


def test_automaton_state_depth_is_the_longest_marker_prefix_at_the_end():
    automaton = MarkerAutomaton(["<human>", "man!", "hum"])
    state = 0
    for char in "a <hum":
        state = automaton.step(state, char)
    assert automaton.found[state] == "hum"
    assert automaton.depth[state] == 4  # "<hum" may still become "<human>"
