"""Where a command's results are printed: a rich Console on stdout, made on first use.

Apart from xarch.cli.options (which defines click's options) so that a build replayed from its
record (xarch.cli.replay) prints its summary without loading click.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    stdout: Console


def __getattr__(name: str) -> Any:
    """`stdout`, the rich Console results are printed on, made when a command first imports it
    (PEP 562): commands that print no table (push) do not load rich."""
    if name != "stdout":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # A pipe gets a wide table rather than rich's 80 columns, so digests are never cut.
    width = None if sys.stdout.isatty() else 200
    console = results_console(soft_wrap=True, width=width)
    globals()["stdout"] = console
    return console


def results_console(**options: Any) -> Any:
    """A rich Console on stdout for a command's results (OPTIONS: Console's keyword arguments).

    emoji=False and highlight=False: text from images and registries (`:name:` in a tag or
    path) is printed as it is. A reader that goes away (`xarch inspect … | head -1`) raises
    BrokenPipeError, which xarch.cli.main ends as a shell reports SIGPIPE (141): rich's own
    handler exits 1, which xarch's exit codes reserve for a negative verdict.
    """
    from rich.console import Console

    class _ResultsConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return _ResultsConsole(**{"highlight": False, "emoji": False, **options})


def terminal() -> Any:
    """The rich Console of results (`stdout`) when stdout is a terminal; None for a pipe or a file
    (a CI log), where commands print plain lines (xarch.summary.print_summary) and rich is
    never loaded."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # closed, or replaced by something without isatty
        return None
    return __getattr__("stdout")
