"""README's table of request fields states every limit the schemas enforce: a caller learns
a bound from the docs, not from a 422."""

from __future__ import annotations

import re

import pytest
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, StringConstraints

from conftest import PROJECT_ROOT
from ragchat import schemas

DOCUMENTED = [
    (schemas.ChatBody, "/chat", ""),
    (schemas.ChatParameters, "/chat", "parameters."),
    (schemas.RetrieveBody, "/retrieve", ""),
    (schemas.HistoryTurn, "/retrieve", "history[]."),
    (schemas.OpenAIChatBody, "/v1/chat/completions", ""),
    (schemas.OpenAIMessage, "/v1/chat/completions", "messages[]."),
]


def table_rows() -> dict[tuple[str, str], str]:
    """(route, field) -> the row's text, from README's "Request fields and their limits"."""
    text = (PROJECT_ROOT / "README.md").read_text()
    assert "### Request fields and their limits" in text, "README has no table of request limits"
    section = text.split("### Request fields and their limits", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`/"):
            for field in re.findall(r"`([^`]+)`", cells[1]):
                rows[(cells[0].strip("`"), field)] = line
    return rows


def bounds(metadata: list) -> list[int | float]:
    out: list[int | float] = []
    for item in metadata:
        if isinstance(item, StringConstraints):
            out += [v for v in (item.min_length, item.max_length) if v is not None]
        elif isinstance(item, (Ge, Gt, Le, Lt, MinLen, MaxLen)):
            out.append(getattr(item, type(item).__name__.lower().replace("len", "_length")))
        elif getattr(item, "pattern", None):
            out += [int(n) for n in re.findall(r"\{\d+,(\d+)\}", item.pattern)]
    return out


def written(value: int | float) -> str:
    if isinstance(value, int) and abs(value) >= 2**32:
        return f"{'-' if value < 0 else ''}2^{abs(value).bit_length() - 1}"
    return f"{value:,}"


@pytest.mark.parametrize(("model", "route", "prefix"), DOCUMENTED, ids=lambda v: getattr(v, "__name__", v))
def test_every_limited_field_has_its_limits_in_the_readme(model: type[BaseModel], route: str, prefix: str):
    rows = table_rows()
    for name, field in model.model_fields.items():
        limits = bounds(field.metadata)
        if not limits:
            continue
        row = rows.get((route, prefix + name))
        assert row, f"README's request table has no row for {route} {prefix + name}"
        for limit in limits:
            assert written(limit) in row, f"{route} {prefix + name}: limit {written(limit)} missing from {row!r}"
