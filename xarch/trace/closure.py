"""From the paths a program used to the image entries it needs, and the minimized tree.

A path the process opened reaches its file through folders and symlinks; each of them must
stay, or the path no longer resolves. Some files the kernel opens itself, with no syscall a
tracer sees: the ELF interpreter (PT_INTERP) of every program executed natively, and the
interpreter of a `#!` script. Those are added here from the image's own bytes.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from xarch.oci.pathglob import matches
from xarch.oci.tree import Entry, Tree

MAX_HOPS = 40  # Linux's limit on symlinks followed in one lookup (MAXSYMLINKS)


def resolve(tree: Tree, path: str, kept: set[str]) -> str | None:
    """Walk absolute PATH through TREE as the kernel would, adding every entry passed
    (folders, symlinks, the final entry) to KEPT; the final tree path, or None if missing."""
    parts = [p for p in path.split("/") if p]
    current: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        if part == ".":
            continue
        candidate = "/".join([*current, part])
        entry = tree.get(candidate)
        if entry is None:
            return None
        kept.add(candidate)
        if entry.type == "symlink":
            hops += 1
            if hops > MAX_HOPS:
                return None
            target = entry.linkname
            if target.startswith("/"):
                current = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        current.append(part)
    return "/".join(current)


def _interpreter(entry: Entry) -> str | None:
    """The program the kernel loads to run ENTRY: its PT_INTERP, or a script's `#!` path."""
    if entry.type != "file":
        return None
    head = entry.head(256)
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip()
        word = line.split()[0] if line.split() else b""
        return word.decode("utf-8", "surrogateescape") if word.startswith(b"/") else None
    if not head.startswith(b"\x7fELF"):
        return None
    try:
        elf = ELFFile(io.BytesIO(entry.read()))
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                return str(segment.get_interp_name())  # type: ignore[attr-defined]  # InterpSegment
    except (ELFError, ValueError, KeyError, IndexError):
        return None  # not an ELF the loader would run either
    return None


@dataclass(frozen=True)
class Needs:
    """What the image config needs whatever the trace saw (absolute image paths)."""

    paths: tuple[str, ...]


def config_needs(entrypoint: Iterable[str], user: str | None, workdir: str | None,
                 path_env: str) -> Needs:
    """The entrypoint's program (searched in PATH_ENV when relative), the account files when a
    user is named, and the working folder."""
    needed: list[str] = []
    words = list(entrypoint)
    if words:
        program = words[0]
        if program.startswith("/"):
            needed.append(program)
        else:
            needed += [posixpath.join(folder or "/", program) for folder in path_env.split(":")]
    if user:
        needed += ["/etc/passwd", "/etc/group"]
    if workdir:
        needed.append(workdir)
    return Needs(tuple(needed))


def kept_paths(tree: Tree, used: Iterable[str], executed: Iterable[str], keep_globs: Iterable[str],
               needs: Needs) -> set[str]:
    """Tree paths (no leading "/") to keep: every entry on the way to each used path, each
    executed program's interpreter (recursively), the config's needs, KEEP_GLOBS' matches, the
    targets of kept hard links, and every folder above a kept entry."""
    kept: set[str] = set()
    globs = list(keep_globs)
    for entry in tree:
        if any(matches(pattern, entry.path) for pattern in globs):
            kept.add(entry.path)
    pending = [*used, *needs.paths]
    programs = list(executed) + [p for p in needs.paths[:1]]
    seen_programs: set[str] = set()
    while programs:
        program = programs.pop()
        final = resolve(tree, program, kept)
        if final is None or final in seen_programs:
            continue
        seen_programs.add(final)
        program_entry = tree.get(final)
        interpreter = _interpreter(program_entry) if program_entry is not None else None
        if interpreter:
            programs.append(interpreter)
    for path in pending:
        resolve(tree, path, kept)
    for path in list(kept):
        link = tree.get(path)
        if link is not None and link.type == "hardlink":
            resolve(tree, "/" + link.linkname, kept)
    for path in list(kept):
        parent = posixpath.dirname(path)
        while parent and parent not in kept:
            kept.add(parent)
            parent = posixpath.dirname(parent)
    return {path for path in kept if path in tree}


def minimize(tree: Tree, kept: set[str]) -> list[Entry]:
    """Remove from TREE every entry not in KEPT; the removed entries, in path order."""
    dropped = [entry for entry in tree if entry.path not in kept]
    for entry in dropped:
        tree.entries.pop(entry.path, None)
    return dropped
