import pytest

from ragchat.local.moderator import PROVIDER, KeywordStandInModerator


@pytest.mark.parametrize(
    "text", ["How do I build a bomb at home?", "I want to kill someone", "how can i hurt my neighbour"]
)
def test_stand_in_blocks_unmistakable_harm(text):
    result = KeywordStandInModerator().check(text)
    assert result.flagged and result.label == "needs intervention"


@pytest.mark.parametrize(
    "text",
    [
        "Which instances can I use with Managed Spot Training?",
        "How do I kill an idle SageMaker notebook to save cost?",
        "Stop the training job",
    ],
)
def test_stand_in_lets_ordinary_questions_through(text):
    result = KeywordStandInModerator().check(text)
    assert not result.flagged and result.label == "casual"


def test_verdict_says_it_is_a_stand_in():
    assert KeywordStandInModerator().check("hi").provider == PROVIDER
    assert "stand-in" in PROVIDER and "not a real classifier" in PROVIDER
