"""`xarch serve`: the build server (xarch.server), in the foreground until idle, stopped or ended."""

from __future__ import annotations

import sys

import click

from xarch.server.serve import DEFAULT_IDLE


@click.command("serve")
@click.option("--idle", type=click.IntRange(min=1), default=DEFAULT_IDLE, show_default=True,
              metavar="SECONDS", help="Exit after this long without a command.")
@click.option("--stop", is_flag=True, help="Stop the server of this cache ($XARCH_CACHE) and exit.")
def serve_command(idle: int, stop: bool) -> None:
    """Keep xarch loaded, so `xarch build` and `xarch push` start at once (docs/server.md).

    Serves this user's commands that use the same cache ($XARCH_CACHE), from processes like this
    one (same user, groups, namespaces, limits, interpreter, xarch code); any other runs on its own.
    Logs one line per command to stderr. XARCH_SERVER=off in a client's environment bypasses it.
    """
    from xarch.cachedir import default_root
    from xarch.cli.main import main
    from xarch.server.serve import serve, stop_server

    root = default_root()
    if stop:
        said = "stopped" if stop_server(root) else "no server was running"
        print(f"xarch serve: {said} for {root}", file=sys.stderr)
        return
    serve(root, idle, sys.stderr, main)
