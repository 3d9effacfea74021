"""What a served command inherits from the server, and so what must match between client and server
(`facts`), and what it takes from the client instead (`carried`).

A forked process keeps its parent's user, groups, namespaces, resource limits, capabilities,
seccomp state, cgroup, CPU affinity, nice value, interpreter and locale: a command run in it
would differ from one run in the client if any of those differed, so the server refuses such a
client (which then runs the command itself). The working folder, environment, umask, signal
dispositions and mask, and the standard streams are the client's, set in the forked process
before the command starts (xarch.server.serve).
"""

from __future__ import annotations

import io
import os
import resource
import stat
import sys
from pathlib import Path
from typing import Any

SOCKET_NAME = "socket"
# The lines of /proc/<pid>/status (proc(5)) that a forked process inherits and a command's
# behaviour can depend on: privileges, seccomp, and the CPUs and memory nodes it may use.
_STATUS_KEYS = ("NoNewPrivs", "Seccomp", "Seccomp_filters", "CapInh", "CapPrm", "CapEff", "CapBnd",
                "CapAmb", "Cpus_allowed_list", "Mems_allowed_list", "Speculation_Store_Bypass")
_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
# Environment variables that act when a process starts, on it: the dynamic loader's (LD_PRELOAD
# of faketime, as reprotest's time variation uses), glibc's, and the interpreter's. A served command
# runs in a process started with the server's, so these must be equal; the rest of the
# environment is the client's, carried over.
_START_ENV = ("LD_", "GLIBC_", "MALLOC_", "OPENSSL_", "PYTHON", "FAKETIME", "LOCPATH", "GCONV_PATH")


def server_folder(cache_root: Path) -> Path:
    """The folder holding the server's socket: `CACHE_ROOT/server`."""
    return cache_root / "server"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            return file.read()
    except OSError:
        return None


def facts() -> dict[str, Any]:
    """This process's inherited traits (see the module), as JSON-ready values; two processes with
    equal facts run a command alike. Unreadable /proc entries are None on both sides alike."""
    status = _read("/proc/self/status") or ""
    kept = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in _STATUS_KEYS:
            kept[key] = value.strip()
    namespaces: dict[str, str | None] = {}
    for name in _NAMESPACES:
        try:
            namespaces[name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            namespaces[name] = None
    limits = {name: list(resource.getrlimit(getattr(resource, name)))
              for name in sorted(dir(resource)) if name.startswith("RLIMIT_")}
    import locale  # noqa: PLC0415 (only here: a client that finds no server never needs it)

    root = os.stat("/")

    return {
        "ids": [list(os.getresuid()), list(os.getresgid()), sorted(os.getgroups())],
        "namespaces": namespaces,
        "status": kept,
        "cgroup": _read("/proc/self/cgroup"),
        "security_label": _read("/proc/self/attr/current"),
        "oom_score_adj": _read("/proc/self/oom_score_adj"),
        "limits": limits,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "personality": _read("/proc/self/personality"),  # setarch: linux32, uname -r, no ASLR
        "root": [root.st_dev, root.st_ino, _root_mounts()],  # chroot, even onto a bind mount of /
        "scheduling": [os.sched_getscheduler(0), os.sched_getparam(0).sched_priority, _io_priority()],
        "start_env": {name: value for name, value in sorted(os.environ.items())
                      if name.startswith(_START_ENV)},
        "python": [sys.version, os.path.realpath(sys.executable), sys.prefix, list(sys.path),
                   list(sys.flags), sys.warnoptions, sorted(map(str, sys._xoptions.items())),
                   sys.getfilesystemencoding(), locale.setlocale(locale.LC_CTYPE)],
    }


def _root_mounts() -> list[list[str]]:
    """The mounts this process sees at "/" (mount ID, device, root within it; proc(5) mountinfo):
    a chroot into a bind mount of / has the same inode as / but another mount."""
    rows = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/":
            rows.append([fields[0], fields[2], fields[3]])
    return rows


# ioprio_get(2) has no Python binding: its syscall number per machine (Linux's syscall tables;
# asm-generic's for aarch64 and riscv64). Elsewhere the priority is None on both sides alike.
_IOPRIO_GET = {"x86_64": 252, "aarch64": 31, "riscv64": 31, "ppc64le": 274, "s390x": 283}


def _io_priority() -> int | None:
    """ioprio_get(IOPRIO_WHO_PROCESS, 0): this process's I/O class and level (ionice)."""
    number = _IOPRIO_GET.get(os.uname().machine)
    if number is None:
        return None
    import ctypes  # noqa: PLC0415 (only here: see facts)

    libc = ctypes.CDLL(None, use_errno=True)
    value = libc.syscall(number, 1, 0)
    return None if value < 0 else int(value)


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The names of the facts (see `facts`) that differ between two processes, sorted; for a
    client's facts, which may be missing keys or hold anything, a missing key differs."""
    return sorted(name for name in set(mine) | set(theirs) if mine.get(name) != theirs.get(name))


def carried() -> dict[str, Any]:
    """What the served command takes from this (the client's) process, besides its standard
    streams and working folder (passed as descriptors): argv, environment, umask, and the signal
    dispositions and mask, as /proc/self/status's SigIgn and SigBlk bit masks, and the encoding,
    error handler and buffering of its stdin, stdout and stderr (which must not be None)."""
    umask = os.umask(0o22)
    os.umask(umask)
    masks = {}
    for line in (_read("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("SigIgn", "SigBlk"):
            masks[key] = int(value.strip(), 16)
    # [encoding, error handler, unbuffered (python -u, PYTHONUNBUFFERED: no buffer under the text)]
    streams = [[stream.encoding, stream.errors, isinstance(getattr(stream, "buffer", None), io.FileIO)]
               for stream in (sys.stdin, sys.stdout, sys.stderr)]
    return {"argv": list(sys.argv), "env": dict(os.environ), "umask": umask, "streams": streams,
            "ignored": masks.get("SigIgn", 0), "blocked": masks.get("SigBlk", 0)}


def private_folder(path: Path) -> int | None:
    """An O_PATH descriptor of folder PATH when it is this user's own and no one else may enter it
    (not a symlink, owned by the effective uid, mode 0700); else None. The caller closes it."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != 0o700:
        os.close(fd)
        return None
    return fd
