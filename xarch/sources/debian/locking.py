"""Write xarch.lock for a recipe: where it lives, resolving and updating it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xarch.oci.store import Store
from xarch.platforms import Platform
from xarch.sources.debian.config import DebianSource, PackageSelection
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
    """Resolve and write xarch.lock next to RECIPE_PATH; nothing is written on error.
    Raises what resolve_lock raises (LockError, ResolveError: exit 2; DownloadError,
    SignatureError, ReleaseExpired, IndexMismatch: exit 4)."""
    lock = resolve_lock(source, selection, platforms, progress=say or _stderr, store=store or Store(),
                        cross=cross)
    lock.dump(lock_path(recipe_path))
    return lock


def recipe_file(recipe_path: Path) -> Path:
    """The recipe file of RECIPE_PATH (which may be its folder, as `-f` allows)."""
    path = Path(recipe_path)
    return path / RECIPE_NAME if path.is_dir() else path


def update_lock(recipe: Path, load: Callable[[Path], Loaded], names: list[str], snapshot: str | None,
                store: Store | None = None, say: Callable[[str], None] | None = None) -> ChangeReport:
    """`xarch lock --update [NAMES] [--snapshot S]`: write the new lock (and the moved pin into the
    recipe), return the change report. Checks NAMES and S before any download (LockError, exit 2);
    then raises what Lock.load, latest_timestamp and resolve_lock raise (exit 2 or 4)."""
    say = say or _stderr
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


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
