"""Path globs of recipes (`layers:`, `trace:`, `foreign_code:`): `**` spans folders, `*` does not."""

from __future__ import annotations

import re
from functools import cache


@cache
def glob_regex(pattern: str) -> re.Pattern[str]:
    """`**` spans folders, `*` and `?` stay within one path part.

    Hand-written because fnmatch lets `*` cross "/" and PurePath.full_match is 3.13+.
    A pattern naming a folder ("usr/lib/**" or "usr/lib") also matches the folder itself.
    """
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    if out.endswith("/.*"):
        out = out[: -len("/.*")] + "(?:/.*)?"
    return re.compile(out + r"\Z")


def matches(pattern: str, path: str) -> bool:
    """True when PATH (no leading "/") matches PATTERN by the rules of `glob_regex`."""
    return glob_regex(pattern).match(path) is not None
