"""Text from an image (file names, link targets, config values) made safe to print on a terminal.

An image is hostile input: a file named `evil\\x1b[2J` clears the screen of whoever runs `xarch
inspect --files`, and one with a newline in its name prints a line of its own that looks like
another entry. `visible` writes every control character (C0, DEL, C1) as a Python escape
(`\\x1b`, `\\n`), so each entry stays one line and shows what is there; JSON output needs
none of this (json.dumps escapes them already).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """TEXT with each control character written as its escape (`\\n`, `\\t`, `\\x1b`)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)
