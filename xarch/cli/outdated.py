"""`xarch outdated`: which locked packages have newer versions in their suite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from xarch.cli.options import say
from xarch.oci.store import Store
from xarch.sources.debian.lock import Lock, as_list, lock_matches
from xarch.sources.debian.locking import Loaded, lock_path


def make_outdated_command(load: Callable[[Path], Loaded]) -> click.Command:
    """The `outdated` command (exit 1 when a pinned package has a newer version)."""

    @click.command("outdated")
    @click.option("-f", "--file", "recipe", type=click.Path(path_type=Path), default=Path("xarch.yaml"),
                  show_default=True, help="The recipe.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option("--snapshot", metavar="latest|TIMESTAMP",
                  help="Compare with the time-pinned archives at this time instead of the recipe's pin.")
    def outdated_command(recipe: Path, as_json: bool, snapshot: str | None) -> None:
        """List each locked package with a newer version in the recipe's archives (exit 1 if any)."""
        from xarch.errors import Verdict
        from xarch.sources.debian.outdated import find_outdated, moved
        from xarch.sources.debian.snapshot import check_timestamp, latest_timestamp

        source, selection, platforms, cross = load(recipe)
        path = lock_path(recipe)
        lock = Lock.load(path)
        differences = lock_matches(lock, source, selection, platforms, cross)
        if differences:
            say(f"note: {path.name} does not match the recipe ({'; '.join(differences)})")
        sources = as_list(source)
        if snapshot is not None:
            stamp = latest_timestamp(sources) if snapshot == "latest" else check_timestamp(snapshot)
            sources = moved(sources, stamp)
        report = find_outdated(lock, sources, Store(), say)
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        else:
            for line in report.lines():
                click.echo(line)
        if report.count:
            raise Verdict(f"{report.count} locked package(s) have a newer version ({report.security_count} "
                          "from a security suite); run `xarch lock --update` to move the pins")

    return outdated_command


def _lock_inputs(path: Path) -> Loaded:
    from xarch.build.packages import lock_inputs
    from xarch.recipe import load

    return lock_inputs(load(path))


outdated_command = make_outdated_command(_lock_inputs)
