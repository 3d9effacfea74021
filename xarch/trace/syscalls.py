"""The paths a process tree used, read from `strace -f -xx` output.

strace(1) is the tracer for both ways an image runs: natively, and under qemu-user, whose
host syscalls carry the guest's paths unchanged (no `-L` prefix), so one parser serves every
architecture. QEMU's own `-strace` log was the alternative; it prints guest syscalls in a
format that changes between QEMU versions and cannot follow a process that execs a binary of
another architecture, while strace's line format is stable and its `-xx` strings are
unambiguous (every byte hex-escaped, so a path may hold any byte, quotes and newlines).

Hand-written because no maintained library parses strace output (b3j0f/strace-parser and
the like are unmaintained and do not decode `-xx`).

Rules (`paths_used`):
- Every string argument of a file syscall is a path (`-e trace=%file`); a few carry other text
  (an xattr name, a symlink's target text, execve's argv) and are left out by position.
- A relative path is taken against the calling process's current folder (chdir/fchdir are
  traced; a child process starts with its parent's folder and open files), or against the
  folder of the `*at` call's directory descriptor.
- Failed calls count too: a program that probes for a file and falls back may behave
  differently when the file is missing, and a path that does not exist in the image is
  dropped later anyway.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

# `PID name(args) = result`, `PID name(args <unfinished ...>`, `PID <... name resumed>args) = result`
_LINE = re.compile(r"^([0-9]+)\s+(.*)$")
_CALL = re.compile(r"^([a-z0-9_]+)\((.*)$", re.S)
_RESUMED = re.compile(r"^<\.\.\. ([a-z0-9_]+) resumed>(.*)$", re.S)
# A child's pid as its parent sees it is in the sandbox's PID namespace; --pidns-translation
# adds the pid the line prefixes use: `= 3 /* 81234 in strace's PID NS */`.
_RESULT = re.compile(r"\)\s+=\s+(-?[0-9]+|\?|0x[0-9a-f]+)(?: /\* ([0-9]+) in strace's PID NS \*/)?")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?')
_DIRFD = re.compile(r"(AT_FDCWD|-?\d+)\s*,\s*$")

# Calls whose first string is not a path: symlink's first argument is the link's text.
_TEXT_FIRST = frozenset({"symlink", "symlinkat"})
# Calls with only one path, then other strings (argv, a link's text, xattr names).
_ONE_PATH = frozenset({"execve", "execveat", "readlink", "readlinkat", "getxattr", "lgetxattr", "setxattr",
                       "lsetxattr", "removexattr", "lremovexattr"})
_FORK = frozenset({"clone", "clone3", "fork", "vfork"})
_OPENS = frozenset({"open", "openat", "openat2", "creat"})


class TraceFormatError(ValueError):
    """A line of the trace this parser cannot read (strace changed its format?)."""


def _decode(hex_escaped: str) -> str:
    data = bytes(int(hex_escaped[i + 2:i + 4], 16) for i in range(0, len(hex_escaped), 4))
    return data.decode("utf-8", "surrogateescape")


@dataclass
class _Process:
    cwd: str = "/"
    fds: dict[int, str] = field(default_factory=dict)


@dataclass
class Used:
    """What a traced process tree touched: absolute, normalized paths (str, surrogate-escaped)."""

    paths: set[str] = field(default_factory=set)
    executed: set[str] = field(default_factory=set)
    truncated: int = 0  # strings strace cut at -s: those paths are not taken


def _calls(lines: Iterable[str]) -> Iterator[tuple[int, str, str, str]]:
    """(pid, syscall, argument text, result) per finished call, unfinished halves joined."""
    pending: dict[int, tuple[str, str]] = {}
    for raw in lines:
        line = _LINE.match(raw.rstrip("\n"))
        if not line:
            continue
        pid, rest = int(line.group(1)), line.group(2)
        if rest.startswith(("+++", "---")):
            continue  # exit and signal notes
        resumed = _RESUMED.match(rest)
        if resumed:
            name, tail = resumed.groups()
            head = pending.pop(pid, (name, ""))[1]
            rest_args = head + tail
        else:
            call = _CALL.match(rest)
            if not call:
                continue
            name, rest_args = call.groups()
            if rest_args.endswith("<unfinished ...>"):
                pending[pid] = (name, rest_args[: -len("<unfinished ...>")])
                continue
        results = list(_RESULT.finditer(rest_args))  # the last: a struct argument may hold "=" too
        result = results[-1] if results else None
        arguments = rest_args[: result.start()] if result else rest_args
        yield pid, name, arguments, (result.group(2) or result.group(1)) if result else "?"


def paths_used(lines: Iterable[str], starts: Callable[[str], bool] | None = None) -> Used:
    """Parse strace output LINES (`strace -f -xx -s N --pidns-translation -e trace=%file,%process,fchdir`).

    With STARTS, only the traced command counts: a process is inside from its first execve of a
    path STARTS accepts, and its children are inside from birth. What runs before (the sandbox's
    own tools on the host: unshare, setpriv, bwrap) is not the image's use.
    """
    used = Used()
    processes: dict[int, _Process] = {}
    inside: set[int] = set()
    calls = list(_calls(lines))
    # strace -f may print a new child's calls before its parent's fork returns (the child ran
    # first): who forked whom is read first, so a child is inside, with its parent's folder and
    # descriptors, from its first line.
    parent_of: dict[int, int] = {}
    for pid, name, _, result in calls:
        if name in _FORK and result.isascii() and result.isdigit() and int(result) > 0:
            parent_of.setdefault(int(result), pid)

    def process(pid: int) -> _Process:
        state = processes.get(pid)
        if state is None:
            parent = processes.get(parent_of.get(pid, -1))
            state = processes[pid] = _Process(parent.cwd, dict(parent.fds)) if parent else _Process()
            if parent_of.get(pid) in inside:
                inside.add(pid)
        return state

    for pid, name, arguments, result in calls:
        state = process(pid)
        if name in _FORK:
            if result.isascii() and result.isdigit() and int(result) > 0:
                child = int(result)
                # The child may have run (and been given a default) before the parent's return.
                known = processes.get(child)
                if known is None or (known.cwd == "/" and not known.fds):
                    processes[child] = _Process(state.cwd, dict(state.fds))
                if pid in inside:
                    inside.add(child)
            continue
        if name == "fchdir":
            fd = arguments.strip()
            if result == "0" and fd.isascii() and fd.isdigit() and int(fd) in state.fds:
                state.cwd = state.fds[int(fd)]
            continue
        found = []
        for match in _STRING.finditer(arguments):
            if match.group(2):  # "..." after the quote: cut by strace's -s
                used.truncated += 1
                continue
            before = arguments[: match.start()]
            dirfd = _DIRFD.search(before)
            base = state.cwd
            if name.endswith("at") or name in ("openat2", "statx", "faccessat2", "renameat2"):
                if dirfd and dirfd.group(1) != "AT_FDCWD":
                    number = int(dirfd.group(1))
                    if number not in state.fds:
                        continue  # a folder opened before the trace began: cannot say where
                    base = state.fds[number]
            found.append(posixpath.normpath(posixpath.join(base, _decode(match.group(1)))))
        if name in _TEXT_FIRST and found:
            found = found[1:]
        if name in _ONE_PATH:
            found = found[:1]
        if not found:
            continue
        if starts is not None and pid not in inside:
            if name in ("execve", "execveat") and starts(found[0]):
                inside.add(pid)
            else:
                continue
        for path in found:
            used.paths.add(path if not path.startswith("//") else "/" + path.lstrip("/"))
        if name in ("execve", "execveat"):
            used.executed.add(found[0])
        if name in _OPENS and result.isascii() and result.isdigit():
            state.fds[int(result)] = found[0]
        if name == "chdir" and result == "0":
            state.cwd = found[0]
    return used
