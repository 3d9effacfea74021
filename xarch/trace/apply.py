"""Minimize a platform's tree to what xarch.trace recorded (the build side of tracing)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from xarch.oci.tree import Entry, Tree
from xarch.recipe import LoadedRecipe
from xarch.trace import record
from xarch.trace.closure import Needs, config_needs, kept_paths, minimize

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def needs_of(loaded: LoadedRecipe) -> Needs:
    """What the image config needs whatever a trace saw: entrypoint (or cmd), accounts, workdir."""
    config = loaded.recipe.config
    program = config.entrypoint or config.cmd or []
    return config_needs(program, config.user, config.workdir, config.env.get("PATH", DEFAULT_PATH))


def command_of(loaded: LoadedRecipe) -> list[str]:
    """The command a trace runs: trace.run, else the config's entrypoint + cmd."""
    spec = loaded.recipe.trace
    assert spec is not None
    if spec.run:
        return list(spec.run)
    config = loaded.recipe.config
    return [*(config.entrypoint or []), *(config.cmd or [])]


def record_path(loaded: LoadedRecipe) -> Path:
    """Where the recipe's trace record lives: xarch.trace beside the recipe file."""
    return record.trace_file(loaded.path)


def record_digest(loaded: LoadedRecipe) -> str | None:
    """The sha256 of xarch.trace's bytes when the recipe has trace: (an image cache key input)."""
    import hashlib

    if loaded.recipe.trace is None:
        return None
    try:
        return hashlib.sha256(record.read_bytes(record_path(loaded))).hexdigest()
    except (OSError, record.TraceFileError):
        return None  # the build itself says what is wrong with the file


@dataclass(frozen=True)
class Minimized:
    """What apply_trace left: the number of paths kept and the tree entries it dropped."""

    kept: int
    dropped: list[Entry]


def apply_trace(loaded: LoadedRecipe, tree: Tree, platform: str) -> Minimized:
    """Keep in TREE only PLATFORM's recorded paths, trace.keep and the config's needs.

    Raises TraceFileError (exit 2) when xarch.trace is missing, malformed or lacks PLATFORM.
    """
    spec = loaded.recipe.trace
    assert spec is not None
    path = record_path(loaded)
    recorded = record.load(path).paths(platform, path)
    kept = kept_paths(tree, recorded, (), spec.keep, needs_of(loaded))
    return Minimized(len(kept), minimize(tree, kept))


def dropped_by_origin(dropped: list[Entry]) -> list[tuple[str, int, int]]:
    """(origin, files, bytes) of dropped regular files, largest first: where the savings are."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in dropped:
        if entry.type == "file":
            origin = entry.origin or "the recipe"
            totals[origin][0] += 1
            totals[origin][1] += entry.size
    return sorted(((origin, n, size) for origin, (n, size) in totals.items()), key=lambda t: (-t[2], t[0]))
