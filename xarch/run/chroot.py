"""Run one shell step sandboxed in a stage root (every strategy: native, cross, emulate).

It goes through xarch.run.sandbox (bubblewrap in a user namespace, pivot_root into the
stage root, own PID/IPC/UTS/net namespaces, podman's rootless capability set); this
module says what a step sees. Nothing runs on the host's file system: a cross step's
tools come from its cross root (xarch.run.cross). The module keeps its old name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from plumbum import local

from xarch.errors import RecipeError
from xarch.run.sandbox import (
    DEV_PROC,
    Bind,
    SandboxUnavailable,
    bwrap_argv,
    hand_over,
    new_staging,
    require_sandbox,
    running_as_root,
    sandbox_problem,
)

TAIL_LINES = 10

Log = Callable[[str], None]


# Kept names: callers check and raise these.
IsolationUnavailable = SandboxUnavailable


@dataclass(frozen=True)
class RunResult:
    """How a step ended: the sandbox command's exit code (0: success) and the last lines of its
    merged stdout+stderr (TAIL_LINES = 10), decoded as UTF-8 with replacement characters."""

    exit_code: int
    tail: tuple[str, ...]  # the last TAIL_LINES lines of stdout+stderr


def isolation_problem() -> str | None:
    """Why steps cannot be sandboxed here (one line with the fix), or None; raises nothing."""
    return sandbox_problem()


# What the host tools before the sandbox (unshare, the bind script, setpriv, bwrap) run with.
# Never the step's env: a recipe's PATH or LD_PRELOAD would pick or inject host code run as root.
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}

# The step's shell: a fixed umask (the caller's must not reach the outputs), then CWD.
_STEP_SHELL = 'umask 022 && cd "$1" && exec /bin/sh -ec "$2"'


def _stream(argv: Sequence[str], env: Mapping[str, str], log: Log) -> RunResult:
    """Run host command ARGV with exactly ENV (nothing from the caller's), feed each output line
    to LOG. ENV is the host side's (HOST_ENV); what the step sees is set inside bwrap."""
    # `env -i` rather than Popen(env=…): plumbum merges the caller's environment in.
    env_argv = [f"{key}={value}" for key, value in sorted(env.items())]
    arguments = ("-i", *env_argv, *argv)
    command = local["env"][arguments]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    # cwd "/": the caller's folder may be one the sandbox id cannot enter.
    process = command.popen(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd="/")
    assert process.stdout is not None
    try:
        for raw in iter(process.stdout.readline, b""):
            line = bytes(raw).decode("utf-8", "replace").rstrip("\n")  # type: ignore[arg-type]
            tail.append(line)
            log(line)
    except BaseException:
        # Interrupted (Ctrl-C, a failing log callback): bwrap's --die-with-parent takes the step down too.
        process.kill()
        process.wait()
        raise
    return RunResult(exit_code=process.wait(), tail=tuple(tail))


def _prepare_root(rootfs: Path) -> Path:
    rootfs = rootfs.resolve()
    # Nothing here follows a link of the stage root: it would lead to the host's files.
    if not os.path.lexists(rootfs / "bin" / "sh"):
        raise RecipeError(f"{rootfs} has no /bin/sh: a stage running steps needs a shell package")
    for mountpoint in ("proc", "dev"):
        (rootfs / mountpoint).mkdir(exist_ok=True)
    if not os.path.lexists(rootfs / "tmp"):
        (rootfs / "tmp").mkdir()
        (rootfs / "tmp").chmod(0o1777)
    return rootfs


def _real_dir(path: Path) -> bool:
    """PATH is a folder of the stage root itself, not a symlink that may lead to the host's."""
    return not path.is_symlink() and path.is_dir()


def _resolver(rootfs: Path, network: bool) -> list[str]:
    """A step allowed the network gets the host's resolver, bound (never copied) over the stage's."""
    stage_file = rootfs / "etc" / "resolv.conf"
    stage_has_file = _real_dir(rootfs / "etc") and not stage_file.is_symlink() and stage_file.is_file()
    if network and Path("/etc/resolv.conf").is_file() and stage_has_file:
        return ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    return []


@contextmanager
def _staging(rootless: bool | None = None) -> Iterator[Path | None]:
    """A staging folder for a root sandbox's binds (see sandbox.bwrap_argv), removed after."""
    if rootless if rootless is not None else not running_as_root():
        yield None
        return
    staging = new_staging()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # empty folders: the binds died with the step


def rootfs_command(
    rootfs: Path, step: str, *, cwd: str = "/", network: bool = False, rootless: bool | None = None,
    staging: Path | None = None, binds: Sequence[Bind] = (), env: Mapping[str, str] | None = None,
) -> list[str]:
    """The command line that runs shell text STEP with /bin/sh of ROOTFS as its root, in CWD.

    ROOTLESS and STAGING: see sandbox.bwrap_argv (as root a STAGING folder is required).
    ENV: the step's whole environment, set by bwrap inside the sandbox (--clearenv, --setenv).
    Creates /proc, /dev and /tmp (1777) in ROOTFS when missing. Raises RecipeError (exit 2)
    when ROOTFS has no /bin/sh.
    """
    rootfs = _prepare_root(rootfs)
    settings = ["--clearenv"]
    for key, value in sorted((env or {}).items()):
        settings += ["--setenv", key, value]
    mounts: list[Bind | str] = [Bind(rootfs, PurePosixPath("/")), *DEV_PROC, *_resolver(rootfs, network),
                                *binds, *settings]
    return bwrap_argv(mounts, ["/bin/sh", "-c", _STEP_SHELL, "xarch-step", cwd, step],
                      network=network, rootless=rootless, staging=staging)


def run_in_rootfs(
    rootfs: Path, step: str, env: Mapping[str, str], *, cwd: str = "/", network: bool = False, log: Log,
    binds: Sequence[Bind] = (),
) -> RunResult:
    """Run shell text STEP with /bin/sh of ROOTFS as its root, in CWD (a path inside ROOTFS).

    The step runs in the sandbox (xarch.run.sandbox) as uid 0 of a user namespace; ROOTFS
    is first handed to the host id that maps to it. Returns the exit code and the output's
    tail; raises SandboxUnavailable (a HostError, exit 3) when this host cannot sandbox,
    RecipeError (exit 2) when ROOTFS has no /bin/sh, BuildError (exit 2) when a bind's mount
    point in ROOTFS is not a folder.
    BINDS (secrets, xarch.run.secretmount) are mounted after the root; their mount points
    exist only while the step runs.
    """
    from xarch.run.secretmount import mount_points

    # bwrap's trial run (sandbox._probe, a process of its own) only when the step fails (below):
    # a host that cannot sandbox fails every step before it starts, and says so as before.
    require_sandbox(probe=False)
    rootfs = _prepare_root(rootfs)
    resolv = rootfs / "etc" / "resolv.conf"
    # An empty mount point for the host's resolver, removed after: it must not ship.
    absent = not os.path.lexists(resolv)
    make_mountpoint = network and _real_dir(rootfs / "etc") and absent
    if make_mountpoint:
        resolv.touch()
    try:
        with mount_points(rootfs, binds):
            hand_over(rootfs)
            with _staging() as staging:
                command = rootfs_command(rootfs, step, cwd=cwd, network=network, staging=staging, binds=binds,
                                         env=env, rootless=not running_as_root())
                result = _stream(command, HOST_ENV, log)
        if result.exit_code != 0:
            require_sandbox()  # bwrap could not start here: the host's fault (exit 3), not the step's
        return result
    finally:
        if make_mountpoint:
            resolv.unlink(missing_ok=True)

