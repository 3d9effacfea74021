"""`xarch lock` as a click command; the recipe loader belongs to the CLI, so it is passed in."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xarch.oci.store import Store
from xarch.platforms import Platform
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.debian.errors import LockError
from xarch.sources.debian.lock import Lock, as_list, lock_matches, resolve_lock

if TYPE_CHECKING:
    from xarch.sources.debian.update import ChangeReport

LOCK_NAME = "xarch.lock"
RECIPE_NAME = "xarch.yaml"
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


def recipe_file(recipe_path: Path) -> Path:
    """The recipe file of RECIPE_PATH (which may be its folder, as `-f` allows)."""
    path = Path(recipe_path)
    return path / RECIPE_NAME if path.is_dir() else path


def _say(message: str) -> None:
    click.echo(message, err=True)


def make_lock_command(load: Callable[[Path], Loaded]) -> click.Command:
    """The `lock` command; LOAD turns a recipe path into (source, selection(s), platforms)."""

    @click.command("lock")
    @click.option("-f", "--file", "recipe", type=click.Path(path_type=Path), default=Path("xarch.yaml"),
                  show_default=True, help="The recipe.")
    @click.option("--update", is_flag=True,
                  help="Resolve again from the current lock and print what changed; with PKG names only "
                       "they and what they need change, every other pin stays.")
    @click.option("--snapshot", metavar="latest|TIMESTAMP",
                  help="Move the recipe's sources.debian snapshot pin (rewriting only that value) and "
                       "resolve again; prints what changed.")
    @click.option("--json", "as_json", is_flag=True, help="With --update or --snapshot: the change report "
                                                           "as JSON.")
    @click.argument("names", nargs=-1, metavar="[PKG]...")
    def lock_command(recipe: Path, update: bool, snapshot: str | None, as_json: bool,
                     names: tuple[str, ...]) -> None:
        """Resolve and pin every package for every platform into xarch.lock."""
        if names and not update:
            raise LockError(f"package names ({' '.join(names)}) need --update: xarch lock --update PKG...")
        if as_json and not (update or snapshot):
            raise LockError("--json needs --update or --snapshot (plain `xarch lock` prints no report)")
        if not update and snapshot is None:
            source, selection, platforms, cross = load(recipe)
            lock = run_lock(recipe, source, selection, platforms, cross=cross)
            total = sum(len(pkgs) for per in lock.packages.values() for pkgs in per.values())
            click.echo(f"wrote {lock_path(recipe)} ({total} package entries)", file=sys.stdout)
            return
        report = update_lock(recipe, load, list(names), snapshot)
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        else:
            for line in report.lines():
                click.echo(line)

    return lock_command


def update_lock(recipe: Path, load: Callable[[Path], Loaded], names: list[str], snapshot: str | None,
                store: Store | None = None, say: Callable[[str], None] = _say) -> ChangeReport:
    """`xarch lock --update [NAMES] [--snapshot S]`: write the new lock (and the moved pin into the
    recipe), return the change report. Checks NAMES and S before any download (LockError, exit 2)."""
    from xarch.sources.debian.outdated import moved
    from xarch.sources.debian.snapshot import check_timestamp, latest_timestamp, rewrite, write_recipe
    from xarch.sources.debian.update import Pinner, check_names, compare, keep_unchanged

    source, selection, platforms, cross = load(recipe)
    path = lock_path(recipe)
    old = Lock.load(path)
    check_names(old, names, path.name)
    differences = lock_matches(old, source, selection, platforms, cross)
    if differences:
        # E.g. a lock copied from another recipe: what the recipe does not ask for leaves it.
        say(f"note: {path.name} does not match the recipe ({'; '.join(differences)})")
    sources = as_list(source)
    text = new_text = ""
    moved_pin: tuple[str | None, str | None] | None = None
    if snapshot is not None:
        text = recipe_file(recipe).read_bytes().decode("utf-8")
        rewrite(text, "20000101T000000Z")  # refuses a recipe without a snapshot, before any download
        stamp = latest_timestamp(sources) if snapshot == "latest" else check_timestamp(snapshot)
        new_text = rewrite(text, stamp)
        moved_pin = (next((s.snapshot for s in sources if s.snapshot), None), stamp)
        sources = moved(sources, stamp)
    pinner = Pinner(old, names, say)
    new = resolve_lock(sources, selection, platforms, progress=say, store=store or Store(), cross=cross,
                       pinning=pinner)
    new = keep_unchanged(old, new)
    new.dump(path)
    if new_text != text:
        write_recipe(recipe_file(recipe), new_text)
        say(f"moved the snapshot pin of {recipe_file(recipe)} to {moved_pin[1] if moved_pin else ''}")
    say(f"wrote {path}")
    return compare(old, new, pinner.sizes, moved_pin)


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
            _say(f"note: {path.name} does not match the recipe ({'; '.join(differences)})")
        sources = as_list(source)
        if snapshot is not None:
            stamp = latest_timestamp(sources) if snapshot == "latest" else check_timestamp(snapshot)
            sources = moved(sources, stamp)
        report = find_outdated(lock, sources, Store(), _say)
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        else:
            for line in report.lines():
                click.echo(line)
        if report.count:
            raise Verdict(f"{report.count} locked package(s) have a newer version ({report.security_count} "
                          "from a security suite); run `xarch lock --update` to move the pins")

    return outdated_command
