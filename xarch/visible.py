"""Text from an image (file names, link targets, config values) made safe to print on a terminal.

An image is hostile input: a file named `evil\\x1b[2J` clears the screen of whoever runs `xarch
inspect --files`, and one with a newline in its name prints a line of its own that looks like
another entry. `visible` writes every control character (C0, DEL, C1) as a Python escape
(`\\x1b`, `\\n`), so each entry stays one line and shows what is there; JSON output needs
none of this (json.dumps escapes them already).

A byte that is not UTF-8 in a file name or argument reaches Python as a lone surrogate (PEP 383:
byte 0xff is U+DCFF). It is written as the byte it stands for (`\\xff`), as a terminal user
would say it, not as `\\udcff`, and never as the raw byte, which a terminal could take as the
start of a sequence.
"""

from __future__ import annotations

import re

_SHOWN_ESCAPED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def visible(text: str) -> str:
    """TEXT with each control character written as its escape (`\\n`, `\\t`, `\\x1b`), and each
    byte that was not UTF-8 (a PEP 383 surrogate, U+DC80–U+DCFF) as `\\xNN`; any other lone
    surrogate as `\\udNNN`."""
    return _SHOWN_ESCAPED.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return repr(match.group())[1:-1]


def surrogates_escaped(text: str) -> str:
    """TEXT with only its lone surrogates escaped as `visible` writes them (`\\xff` for a byte that
    was not UTF-8): for text whose line breaks are handled apart (xarch.errors)."""
    return _SURROGATE.sub(_escape, text)
