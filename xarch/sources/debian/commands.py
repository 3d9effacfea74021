"""`xarch lock` as a click command; the recipe loader belongs to the CLI, so it is passed in."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click

from xarch.platforms import Platform
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.debian.lock import Lock, resolve_lock
from xarch.store import Store

LOCK_NAME = "xarch.lock"
Sources = DebianSource | Sequence[DebianSource]
Selections = PackageSelection | Mapping[str, PackageSelection]
# (sources, selections, platforms, cross stages' selections)
Loaded = tuple[Sources, Selections, list[Platform], Mapping[str, PackageSelection]]


def lock_path(recipe_path: Path) -> Path:
    """xarch.lock lives next to the recipe; RECIPE_PATH may be the recipe's folder (as `-f` allows)."""
    path = Path(recipe_path).resolve()
    return (path if path.is_dir() else path.parent) / LOCK_NAME


def run_lock(recipe_path: Path, source: Sources, selection: Selections,
             platforms: list[Platform], store: Store | None = None,
             say: Callable[[str], None] | None = None,
             cross: Mapping[str, PackageSelection] | None = None) -> Lock:
    """Resolve and write xarch.lock next to RECIPE_PATH; nothing is written on error."""
    def default_say(message: str) -> None:
        click.echo(message, err=True)

    lock = resolve_lock(source, selection, platforms, progress=say or default_say, store=store or Store(),
                        cross=cross)
    lock.dump(lock_path(recipe_path))
    return lock


def make_lock_command(load: Callable[[Path], Loaded]) -> click.Command:
    """The `lock` command; LOAD turns a recipe path into (source, selection(s), platforms)."""

    @click.command("lock")
    @click.option("-f", "--file", "recipe", type=click.Path(path_type=Path), default=Path("xarch.yaml"),
                  show_default=True, help="The recipe.")
    def lock_command(recipe: Path) -> None:
        """Resolve and pin every package for every platform into xarch.lock."""
        source, selection, platforms, cross = load(recipe)
        lock = run_lock(recipe, source, selection, platforms, cross=cross)
        total = sum(len(pkgs) for per in lock.packages.values() for pkgs in per.values())
        click.echo(f"wrote {lock_path(recipe)} ({total} package entries)", file=sys.stdout)

    return lock_command
