"""xarch's command line: one module per command, options shared in `options`, the group in `main`.

Thin: parse, call the library, print. `xarch --help` imports only click and `main`; a command's
module (and what it needs: Docker, requests, the build) loads when that command runs.
"""

from __future__ import annotations

from xarch.cli.main import cli, main, run

__all__ = ["cli", "main", "run"]
