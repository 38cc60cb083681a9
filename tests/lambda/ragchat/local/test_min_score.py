"""The local no-answer threshold: `RAGCHAT_MIN_SCORE` sets it, as in the Lambda, so a
threshold `ragchat eval` calibrates on your own questions can be applied locally."""

import pytest

from doubles import RecordingGenerator
from ragchat.engine import EngineSettings
from ragchat.local.factory import LocalSettings, build_local_engine, min_score_from_env

SPOT = "Which instances can I use with Managed Spot Training in SageMaker?"


def test_min_score_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("RAGCHAT_MIN_SCORE", raising=False)
    assert min_score_from_env() is None
    assert LocalSettings().min_score is None
    monkeypatch.setenv("RAGCHAT_MIN_SCORE", "0.35")
    assert min_score_from_env() == 0.35
    assert LocalSettings().min_score == 0.35


def test_bad_min_score_names_the_variable(monkeypatch):
    monkeypatch.setenv("RAGCHAT_MIN_SCORE", "high")
    with pytest.raises(ValueError, match="RAGCHAT_MIN_SCORE"):
        LocalSettings()


@pytest.mark.models
def test_engine_applies_the_configured_threshold(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGCHAT_MIN_SCORE", raising=False)
    default = build_local_engine(LocalSettings(data_dir=tmp_path), generator_factory=RecordingGenerator, progress=False)
    assert default.settings.min_score == EngineSettings.min_score
    ranked, sources = default.lookup(SPOT)
    assert sources

    strict = build_local_engine(
        LocalSettings(data_dir=tmp_path, min_score=ranked[0].score + 0.01),
        generator_factory=RecordingGenerator,
        progress=False,
    )
    ranked_again, none = strict.lookup(SPOT)
    assert [m.id for m in ranked_again] == [m.id for m in ranked]
    assert none == []
