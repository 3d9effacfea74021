"""`xarch trace`: run the image's command under strace and record the paths it uses."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from xarch import platforms as platform_data
from xarch.cli.options import json_option, platforms_option, quiet_option
from xarch.errors import BuildError, RecipeError, Verdict
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.progress import Reporter
from xarch.recipe import DEFAULT_FILE, load, resolve_epoch
from xarch.units import human_size

# What execvp searches when PATH is unset (glibc's confstr(_CS_PATH)): bwrap runs the command so.
EXECVP_PATH = "/bin:/usr/bin"


class TraceFailed(Verdict):
    """`--check`: the probe (or the command) did not pass against the minimized image (exit 1)."""


class TraceRunFailed(BuildError):
    """The probe (or the command) did not pass against the full image: the recipe's trace:
    settings do not work, so nothing is recorded (exit 2, as a failing build step)."""


def _tree_bytes(tree: Tree) -> int:
    return sum(entry.size for entry in tree if entry.type == "file")


@dataclass(frozen=True)
class Result:
    """One platform: entries and file bytes kept (or, with --check, in the minimized image) of the
    full image's; with a trace, (origin, files, bytes) dropped, largest first."""

    platform: str
    entries: int
    full_entries: int
    bytes: int
    full_bytes: int
    dropped: list[tuple[str, int, int]] = field(default_factory=list)


@click.command("trace")
@click.option("-f", "--file", "recipe_path", type=click.Path(path_type=Path), default=Path(DEFAULT_FILE),
              show_default=True, help="The recipe, or a folder holding xarch.yaml.")
@platforms_option
@click.option("--check", is_flag=True,
              help="Do not trace: run trace.probe against the minimized image; exit 1 if it fails.")
@json_option
@quiet_option
def trace_command(recipe_path: Path, platform_list: str | None, check: bool, as_json: bool,
                  quiet: bool) -> None:
    """Run each platform's full image in the step sandbox (QEMU for other architectures) under
    strace, and write the paths it used to xarch.trace beside the recipe."""
    from xarch.build.packages import ensure_lock
    from xarch.build.pipeline import BuildInputs, PlatformBuild, full_tree
    from xarch.cli.options import select_platforms
    from xarch.trace import record
    from xarch.trace.apply import apply_trace, command_of, dropped_by_origin, needs_of, record_path
    from xarch.trace.closure import kept_paths
    from xarch.trace.runner import find_program, require_tools, run_tree, user_ids
    from xarch.trace.syscalls import paths_used

    reporter = Reporter(quiet=quiet or as_json)
    loaded = load(recipe_path)
    spec = loaded.recipe.trace
    if spec is None:
        raise RecipeError(f"{loaded.path}: no trace: section; add one (see docs/trace.md)")
    command = command_of(loaded)
    if not command:
        raise RecipeError(f"{loaded.path}: trace.run is not set and the config has no entrypoint or cmd")
    platforms = select_platforms(loaded, platform_list)
    require_tools(not check, spec.probe)  # before minutes of building
    epoch, _ = resolve_epoch(loaded)
    store = Store()
    lock = ensure_lock(loaded, False, store, reporter)
    python = None
    if loaded.recipe.python is not None:
        from xarch.build.python import ensure_python_lock

        python = ensure_python_lock(loaded, lock, False, reporter)
    from xarch.build.python_stages import ensure_stage_locks

    inputs = BuildInputs(loaded, platforms, epoch, lock, None, store, python=python,
                         stage_python=ensure_stage_locks(loaded, lock, False, reporter))
    host = platform_data.host()
    config = loaded.recipe.config
    env = dict(config.env) or {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    path = record_path(loaded)
    previous: dict[str, tuple[str, ...]] = {}
    if not check and os.path.lexists(path):
        try:
            previous = record.load(path).platforms
        except record.TraceFileError as error:
            # A broken record must not stop the command that rewrites it.
            click.echo(f"note: {error}; it is written anew (platforms not traced now are left out)",
                       err=True)  # shown even with --json/-q: what the command overwrites
    results: list[Result] = []
    traced: dict[str, tuple[str, ...]] = dict(previous)
    with tempfile.TemporaryDirectory(prefix="xarch-trace-") as scratch:
        for platform in platforms:
            workdir = Path(scratch) / platform.slug
            tree, _ = full_tree(PlatformBuild(inputs, platform, workdir / "build", reporter))
            full_bytes, full_entries = _tree_bytes(tree), len(tree)
            if find_program(tree, command[0], env.get("PATH", EXECVP_PATH), config.workdir or "/") is None:
                field_name = "trace.run" if spec.run else "config.entrypoint"
                raise RecipeError(f"{loaded.path}: {field_name}: {command[0]!r} is not a program in the "
                                  f"{platform.name} image")
            ids = user_ids(config.user, tree, f"{loaded.path}: ")
            if check:
                apply_trace(loaded, tree, platform.name)
            how = "natively" if platform.name == host.name else "in QEMU"
            reporter.info(f"[{platform.name}] running {' '.join(command)} {how}"
                          + (" against the minimized image" if check else " under strace"))
            outcome = run_tree(tree, platform, host, command, env, config.workdir or "/", spec.probe,
                               spec.timeout, workdir / "run", traced=not check,
                               ids=ids)
            if not outcome.passed and check:
                raise TraceFailed(f"{platform.name}: {outcome.detail} (the minimized image)")
            if not outcome.passed:
                raise TraceRunFailed(f"{platform.name}: {outcome.detail} (the full image)")
            if check:
                results.append(Result(platform.name, len(tree), full_entries, _tree_bytes(tree), full_bytes))
                continue
            assert outcome.trace is not None
            with outcome.trace.open(encoding="ascii", errors="replace") as lines:
                used = paths_used(lines, starts=_starts(command[0]))
            kept = kept_paths(tree, used.paths, used.executed, spec.keep, needs_of(loaded))
            traced[platform.name] = tuple(sorted("/" + p for p in kept))
            dropped = [entry for entry in tree if entry.path not in kept]
            kept_bytes = full_bytes - sum(e.size for e in dropped if e.type == "file")
            results.append(Result(platform.name, len(kept), full_entries, kept_bytes, full_bytes,
                                  dropped_by_origin(dropped)))
    if not check:
        record.TraceRecord(traced).dump(path)
        reporter.info(f"wrote {path}")
    _print(results, check, as_json)


def _starts(program: str) -> Callable[[str], bool]:
    """The execve that starts the command: its path, or any PATH folder's entry of that name."""
    if program.startswith("/"):
        return lambda path: path == program
    return lambda path: path == program or path.endswith("/" + program)


def _print(results: list[Result], check: bool, as_json: bool) -> None:
    if as_json:
        data = {"check": check, "platforms": [
            {"platform": r.platform, "entries": r.entries, "full_entries": r.full_entries, "bytes": r.bytes,
             "full_bytes": r.full_bytes,
             "dropped": [{"origin": o, "files": n, "bytes": b} for o, n, b in r.dropped]} for r in results]}
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return
    for r in results:
        if check:
            click.echo(f"{r.platform}: the probe passed against the minimized image ({r.entries} entries, "
                       f"{human_size(r.bytes)})")
            continue
        click.echo(f"{r.platform}: keeps {r.entries} of {r.full_entries} entries, {human_size(r.bytes)} of "
                   f"{human_size(r.full_bytes)}")
        for origin, files, size in r.dropped[:12]:
            click.echo(f"  dropped {human_size(size):>10}  {files:>5} files  {origin}")
