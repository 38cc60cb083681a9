import pytest

from cdk_helpers import synth_once


@pytest.fixture(scope="session")
def default_template() -> dict:
    return synth_once()[0]
