"""xarch's command line: one module per command, options shared in `options`, the group in `group`.

Thin: parse, call the library, print. `xarch --help` imports only click, `main` and `group`; a
command's module (and what it needs: Docker, requests, the build) loads when that command runs,
and a build replayed from its record (`replay`) loads no click.
"""

from __future__ import annotations

from typing import Any

from xarch.cli.main import main, run

__all__ = ["cli", "main", "run"]


def __getattr__(name: str) -> Any:
    """`cli`, the command group, loaded with click when first asked for (PEP 562)."""
    if name != "cli":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from xarch.cli.group import cli

    return cli
