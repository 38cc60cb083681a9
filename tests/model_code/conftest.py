"""Shared helpers for the model_code tests: the examples in model_code/README.md."""

from __future__ import annotations

import re

import pytest

from conftest import PROJECT_ROOT

EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```\w*\n(?P<body>.*?)\n```", re.DOTALL)


@pytest.fixture(scope="session")
def readme_examples() -> dict[str, str]:
    """Every block marked `<!-- example: NAME -->` in model_code/README.md, by name."""
    text = (PROJECT_ROOT / "model_code" / "README.md").read_text()
    examples = {m["name"]: m["body"] for m in EXAMPLE.finditer(text)}
    assert len(examples) == text.count("<!-- example:"), "every marked example is followed by a fenced block"
    return examples
