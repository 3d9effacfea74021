"""Reading maintainer scripts as text, never running them: which commands they call.

A maintainer script is a shell program; xarch does not interpret shell. It reads the
simple commands a script spells out with literal words, which is how debhelper and
most bookworm packages call update-alternatives and setcap:

    update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\
        --slave /usr/bin/nawk nawk /usr/bin/mawk

Rules (each tested in tests/integration/test_debian_effects.py):
- a backslash-newline joins lines; `#` starts a comment (shlex's rules);
- `;`, `&&`, `||`, `|`, `(`, `)`, `then`, `do`, `else`, `!` and newlines end or open a
  command, so `if cond; then cmd; fi` and `cmd || true` yield `cmd`;
- a top-level `NAME=word` assignment with a literal word is substituted for `$NAME` and
  `${NAME}` later in the script; `$(dpkg-divert --truename PATH)` is PATH (xarch images
  have no diversions);
- a command whose words still hold `$` or a backquote after that is returned with
  `resolved=False`: its effect cannot be known without running the script.

Written by hand: bashlex parses bash, not the POSIX sh of maintainer scripts, and a full
interpreter is exactly what this module exists to avoid; shlex does the quoting.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_SEPARATORS = {";", "&&", "||", "|", "(", ")", "&", ";;", "{", "}"}
_OPENERS = {"then", "do", "else", "!", "if", "elif", "while", "until", "exec"}
_ASSIGNMENT = re.compile(r"^[ \t]*([A-Za-z_][A-Za-z0-9_]*)=(\S*)[ \t]*$", re.MULTILINE)
_TRUENAME = re.compile(r"\$\(\s*dpkg-divert\s+--truename\s+([^\s$()`;|&]+)\s*\)")


@dataclass(frozen=True)
class Command:
    """One simple command of a script: its words, and whether they are all literal."""

    words: tuple[str, ...]
    resolved: bool

    @property
    def name(self) -> str:
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""

    def __str__(self) -> str:
        return shlex.join(self.words)


def _variables(text: str) -> dict[str, str]:
    """Top-level literal assignments (the first value of each name wins; a name assigned
    twice is ambiguous without running the script, so it is dropped)."""
    values: dict[str, str] = {}
    seen: set[str] = set()
    for match in _ASSIGNMENT.finditer(text):
        name, raw = match.group(1), match.group(2)
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        value = words[0] if len(words) == 1 else None
        if name in seen or value is None or "$" in value or "`" in value:
            values.pop(name, None)
            seen.add(name)
            continue
        seen.add(name)
        values[name] = value
    return values


# Set by dpkg for every script; empty when installing into the running system's root.
_DPKG_VARIABLES = {"DPKG_ROOT": ""}


def _substitute(text: str) -> str:
    text = _TRUENAME.sub(lambda m: m.group(1), text)
    values = {**_DPKG_VARIABLES, **_variables(text)}
    for name, value in values.items():
        # re.sub's replacement is a template: its backslashes are doubled.
        quoted = (shlex.quote(value) if value else "").replace("\\", "\\\\")
        text = re.sub(r"\$\{" + name + r"\}|\$" + name + r"(?![A-Za-z0-9_])", quoted, text)
    return text


def commands(script: bytes) -> list[Command]:
    """The simple commands of SCRIPT (a maintainer script's bytes), in text order.

    A script shlex cannot split (an unbalanced quote, a here-document it misreads) gives
    the commands of the lines it can split, each line on its own.
    """
    text = _substitute(script.decode("utf-8", "replace"))
    result: list[Command] = []
    try:
        _split_into(text, result)
    except ValueError:
        result.clear()
        for line in text.replace("\\\n", " ").splitlines():
            try:
                _split_into(line, result)
            except ValueError:
                continue
    return result


def _without_redirections(words: list[str]) -> tuple[str, ...]:
    """`cmd a > /dev/null 2>` → (cmd, a): a redirection is not an argument."""
    kept: list[str] = []
    skip = False
    for index, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in (">", ">>", "<"):
            skip = True
            continue
        redirect = index + 1 < len(words) and words[index + 1] in (">", ">>", "<")
        if word.isascii() and word.isdigit() and redirect:
            continue
        kept.append(word)
    return tuple(kept)


_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def _strip_heredocs(text: str) -> str:
    """Here-document bodies are data, not commands (and often hold a lone apostrophe)."""
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        match = _HEREDOC.search(line)
        if match:
            strip_tabs, delimiter = match.group(1) == "-", match.group(3)
            while index < len(lines):
                body = lines[index].lstrip("\t") if strip_tabs else lines[index]
                index += 1
                if body == delimiter:
                    break
    return "\n".join(out)


def _strip_comments(text: str) -> str:
    """Drop `#` comments: a `#` that starts a word outside quotes, to the end of its line."""
    out: list[str] = []
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                out.append(text[index:index + 2])
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char == "\\":
            out.append(text[index:index + 2])
            index += 2
            continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t\n;&|()"):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _split_into(text: str, out: list[Command]) -> None:
    text = _strip_comments(_strip_heredocs(text.replace("\\\n", " ")))  # continuations joined
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
    lexer.whitespace = " \t\r"  # newlines end commands: they come back as tokens
    lexer.commenters = ""  # shlex would swallow the newline ending a comment; stripped above
    lexer.wordchars += "$`{}:,+@%^[]!"
    current: list[str] = []

    def flush() -> None:
        if current:
            words = _without_redirections(current)
            literal = not any("$" in w or "`" in w for w in words)
            out.append(Command(words, literal))
            current.clear()

    for token in lexer:
        if token == "\n" or token in _SEPARATORS:
            flush()
        elif not current and token in _OPENERS:
            continue
        else:
            current.append(token)
    flush()
