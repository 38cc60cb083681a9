"""The answer-quality scores of bench/answer_quality.py: overlap with the reference, loops,
and the groundedness check (what counts as a number or product name the answer invented)."""

from ragchat.evaluation.answers import grounded, loops, rouge_l, token_f1, ungrounded_claims

SOURCES = (
    "Q: Which instances can I use with Managed Spot Training? A: Managed Spot Training works with all instances "
    "supported in Amazon SageMaker, including GPU instances such as ml.p3.2xlarge and EC2 capacity. Savings are "
    "up to 90% over on-demand instances; a job can use 1,000 spot instances and checkpoints every 10 minutes."
)


def test_a_faithful_answer_is_grounded_whatever_its_formatting():
    answer = (
        "SAGEMAKER's Managed Spot Training:\n"
        "1. works with GPUs like the ml.p3.2xlarge and EC2 instances;\n"
        "2. saves up to 90 percent and runs up to 1000 instances, with checkpoints every 10 minutes."
    )
    assert ungrounded_claims(answer, SOURCES) == set()
    assert grounded(answer, SOURCES)


def test_invented_numbers_and_names_are_caught():
    assert ungrounded_claims("Savings reach 9% on EKS with ml.p4d.24xlarge.", SOURCES) == {
        "9",
        "EKS",
        "ml.p4d.24xlarge",
    }, "a number matches a whole number of the sources: 9 is not 90"
    assert not grounded("It needs 100 instances.", SOURCES), "100 is not 10 nor 1,000"
    assert not grounded("Use a P4 instance.", SOURCES), "the digit of a name is checked with the name"


def test_what_the_question_named_is_not_invented():
    question = "Does Managed Spot Training work with SageMaker HyperPod?"
    assert ungrounded_claims("Yes, with HyperPod too.", SOURCES) == {"HyperPod"}
    assert grounded("Yes, with HyperPod too.", SOURCES, question)


def test_overlap_scores():
    assert token_f1("spot training saves money", "spot training saves money") == 1.0
    assert token_f1("nothing alike", "spot training") == 0.0
    assert rouge_l("a b c d", "a x c d") == 0.75
    assert 0 < token_f1("spot instances save up to 90%", SOURCES) < 1


def test_a_loop_runs_to_the_limit_repeating_a_phrase():
    looped = "South Africa - South America - " + "Africa and South America, " * 4
    assert loops(looped, tokens=128, limit=128)
    assert not loops(looped, tokens=40, limit=128), "a reply that ended by itself did not loop to the limit"
    assert not loops("One sentence that ends.", tokens=128, limit=128)
