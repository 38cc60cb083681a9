"""Text from documents, models and servers, made safe to write to a terminal.

A retrieved document, a file name or a reply can hold escape sequences: ESC ] 0 retitles the
window, ESC ] 52 writes the clipboard, ESC [ 8 m hides what follows, and a carriage return
overwrites the line shown. The CLI prints such text through `shown`, which writes each control
character as a visible escape (`\\x1b`) and keeps line breaks and tabs; `shown_json` writes
JSON that carries no raw control character either."""

from __future__ import annotations

import json
import re
from typing import Any

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but \t and \n, DEL, C1
UNESCAPED_BY_JSON = re.compile(r"[\x7f-\x9f]")  # json.dumps escapes C0 itself, not DEL and C1


def shown(text: object) -> str:
    return CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(text))


def shown_json(data: Any) -> str:
    """Indented JSON for a terminal: the same JSON, with DEL and C1 (which some terminals obey
    too) written as \\u escapes."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return UNESCAPED_BY_JSON.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
