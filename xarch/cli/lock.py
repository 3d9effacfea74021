"""`xarch lock`: resolve the recipe's Debian packages and Python wheels into xarch.lock."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from xarch.build.packages import lock_inputs
from xarch.build.python import lock_drift, lock_file, resolve_python
from xarch.build.python_stages import has_stage_python, resolve_stage, stage_drift, stage_parts
from xarch.errors import ExitCode
from xarch.recipe import LoadedRecipe, load
from xarch.sources.debian.errors import LockError
from xarch.sources.debian.lock import Lock
from xarch.sources.debian.locking import Loaded, lock_path, run_lock, update_lock
from xarch.sources.python.lock import (
    compare_pins,
    dump_section,
    load_section,
    load_stage_sections,
)


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


def with_python(
    lock_command: click.Command, debian_inputs: Callable[[Path], Any], load: Callable[[Path], LoadedRecipe]
) -> click.Command:
    """The `lock` command, extended: after the Debian part, the python section; `--check`."""
    original = lock_command.callback
    assert original is not None

    def callback(**kwargs: Any) -> None:
        check = kwargs.pop("check")
        given = {"--update": kwargs["update"], "--snapshot": kwargs["snapshot"], "--json": kwargs["as_json"],
                 "PKG": kwargs["names"]}
        moving = [option for option, value in given.items() if value]
        if check and moving:  # --check writes nothing; it must not be read as "check, then update"
            raise LockError(f"--check writes nothing and takes no {' or '.join(moving)}")
        recipe_path: Path = kwargs["recipe"]
        loaded = load(recipe_path)
        from xarch.build.packages import cross_selections, selections
        from xarch.build.python_stages import has_stage_python, lock_stages
        from xarch.sources.debian.lock import Lock

        debian_wanted = bool(selections(loaded) or cross_selections(loaded))
        path = lock_file(loaded)
        if check:
            code = 0
            if debian_wanted:
                from xarch.sources.debian.lock import lock_matches

                source, wanted, platforms, cross = debian_inputs(recipe_path)
                debian_lock = Lock.load(path)
                for line in lock_matches(debian_lock, source, wanted, platforms, cross):
                    click.echo(f"debian: {line}")
                    code = ExitCode.VERDICT
            debian = Lock.load(path) if debian_wanted else None
            code = max(code, check_command(loaded, debian))
            if has_stage_python(loaded):
                code = max(code, check_stages_command(loaded, debian))
            sys.exit(code)
        stage_python = has_stage_python(loaded)
        if debian_wanted or (loaded.recipe.python is None and not stage_python):
            original(**kwargs)
        if loaded.recipe.python is not None:
            debian = Lock.load(path) if debian_wanted else None
            lock = resolve_python(loaded, debian, lambda message: click.echo(message, err=True))
            dump_section(path, lock)
            total = sum(len(wheels) for wheels in lock.wheels.values())
            click.echo(f"wrote {path} ({total} python wheel entries)", file=sys.stdout)
        if stage_python:
            debian = Lock.load(path) if debian_wanted else None
            locks = lock_stages(loaded, debian, lambda message: click.echo(message, err=True))
            total = sum(len(wheels) for lock in locks.values() for wheels in lock.wheels.values())
            click.echo(f"wrote {path} ({total} python wheel entries of stages {', '.join(locks)})",
                       file=sys.stdout)

    params = [
        *lock_command.params,
        click.Option(
            ["--check"],
            is_flag=True,
            help="Write nothing; say which locked inputs and pins drifted (exit 1 if any).",
        ),
    ]
    return click.Command(
        lock_command.name,
        params=params,
        callback=callback,
        help=lock_command.help,
        short_help=lock_command.short_help,
    )


def _lock_inputs(path: Path) -> Loaded:
    from xarch.recipe import load

    return lock_inputs(load(path))


def _load(path: Path) -> LoadedRecipe:

    return load(path)


lock_command = with_python(make_lock_command(_lock_inputs), _lock_inputs, _load)


def check_command(loaded: LoadedRecipe, debian: Lock | None) -> int:
    """`xarch lock --check`: say what drifted, without writing. Exit 1 when anything did.

    Input drift (the recipe changed since the lock) needs no network; then each platform is
    resolved again and every dependency whose pin would change is named."""
    if loaded.recipe.python is None:
        return 0
    lock = load_section(lock_file(loaded))
    lines = [f"python: {line}" for line in lock_drift(loaded, lock, debian)]
    if lock is not None:
        fresh = resolve_python(loaded, debian, lambda _message: None)
        lines += [f"python on {line}" for line in compare_pins(lock, fresh)]
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("python: every pin is what the index resolves today")
    return ExitCode.VERDICT if lines else ExitCode.OK


def check_stages_command(loaded: LoadedRecipe, debian: Lock | None) -> int:
    """`xarch lock --check` for the stages: the inputs that drifted, then, for each stage, every
    dependency whose pin the index would change (`python stage gen on amd64: jinja2 3.1.5 → 3.1.6`).
    Writes nothing; ExitCode.VERDICT when anything drifted."""
    if not has_stage_python(loaded):
        return ExitCode.OK
    locks = load_stage_sections(lock_file(loaded))
    lines = [f"python: {line}" for line in stage_drift(loaded, locks, debian)]
    for name in stage_parts(loaded):
        if name in locks:
            fresh = resolve_stage(loaded, debian, name, lambda _message: None)
            lines += [f"python stage {name} on {line}" for line in compare_pins(locks[name], fresh)]
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("python (stages): every pin is what the index resolves today")
    return ExitCode.VERDICT if lines else ExitCode.OK
