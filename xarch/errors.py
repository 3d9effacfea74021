"""Errors a user can act on, and the one exit-code table every command uses.

The CLI prints each XarchError as one line, `xarch: error: <message>`, and exits with
the error's `exit_code`. Anything else that escapes is a bug: one line naming it, exit
70 (EX_SOFTWARE of BSD's sysexits.h), the traceback only with XARCH_DEBUG=1.

| code | meaning |
|---|---|
| 0 | success |
| 1 | a negative verdict: `diff` found differences, `verify` found the build not reproducible |
| 2 | bad input: recipe, lock, arguments, image files (layouts, archives, .debs), a failing step |
| 3 | a host tool or capability is missing: namespaces, binfmt_misc, QEMU, dockerd, buildx |
| 4 | network or registry: unreachable, refused, denied, rate-limited past the retry budget |
| 70 | internal error: a bug in xarch |
"""

from collections.abc import Sequence
from enum import IntEnum

from xarch.visible import surrogates_escaped


class ExitCode(IntEnum):
    """The exit codes of every command (the table above); XarchError subclasses carry one."""

    OK = 0
    VERDICT = 1
    INPUT = 2
    HOST = 3
    NETWORK = 4
    INTERNAL = 70


class XarchError(Exception):
    """Base of every error shown to the user as `xarch: error: <message>` (bad input, exit 2)."""

    exit_code: int = ExitCode.INPUT
    # Context the CLI prints after the one error line, each line indented: e.g. the last
    # output lines of a failed build step, which are the step's words, not xarch's.
    details: tuple[str, ...] = ()
    # One line the CLI prints last, `hint: …`, when the cause is likely one the user can fix.
    hint: str = ""

    def __init__(self, *args: object, details: Sequence[str] = ()) -> None:
        super().__init__(*args)
        if details:
            self.details = tuple(details)

    def __str__(self) -> str:
        # Always one line that any terminal can print, whatever the message took in: a library's
        # multi-line text (tarfile, PyYAML), a name holding a newline or a lone surrogate (a
        # non-UTF-8 file name, YAML's "\udcff"). Line breaks become " / "; a byte that was not UTF-8
        # is shown as the byte (\xff), as xarch.visible shows it.
        text = surrogates_escaped(super().__str__())
        lines = text.splitlines()
        return text if lines == [text] else " / ".join(part.strip() for part in lines if part.strip())


class InputError(XarchError):
    """Bad input: a recipe, lock, argument or image file; the message names it (exit 2)."""


class RecipeError(InputError):
    """The recipe (or a file it names) is wrong; the message names file, line and field."""


class BuildError(XarchError):
    """A build could not complete (e.g. a step failed); nothing was written to the output (exit 2)."""


class HostError(XarchError):
    """This host lacks a tool or capability the command needs; the message says how to get it (exit 3)."""

    exit_code = ExitCode.HOST


class NetworkError(XarchError):
    """A server could not be reached or refused the request, after retries (exit 4)."""

    exit_code = ExitCode.NETWORK


class Verdict(XarchError):
    """A negative verdict the user asked for (not reproducible, images differ, pins outdated) (exit 1)."""

    exit_code = ExitCode.VERDICT
