import pytest

from cdk_helpers import synth


@pytest.fixture(scope="session")
def default_template() -> dict:
    return synth()[0]
