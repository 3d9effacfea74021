"""qemu-user-static, through plumbum: find it, check it can serve a platform, run under it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plumbum import local

from xarch.errors import BuildError, HostError
from xarch.platforms import Platform
from xarch.run import binfmt
from xarch.run.chroot import Log, RunResult, run_in_rootfs
from xarch.run.sandbox import Bind


class EmulationUnavailable(HostError):
    """A platform cannot be emulated on this host now; the message says what fixes it."""


@dataclass(frozen=True)
class Problem:
    """Why a platform cannot be emulated now (one phrase) and the command that fixes it ("" when
    no command does)."""

    why: str
    fix: str


def binary_name(platform: Platform) -> str:
    """The statically linked QEMU user-mode binary Debian's qemu-user-static ships for PLATFORM:
    "qemu-" + its `qemu:` CPU name + "-static" ("qemu-aarch64-static"). Raises nothing."""
    return f"qemu-{platform.qemu}-static"


def find_qemu(platform: Platform) -> Path | None:
    """Where binary_name(PLATFORM) is on PATH (shutil.which), or None. Raises nothing."""
    found = shutil.which(binary_name(platform))
    return Path(found) if found else None


def emulation_problem(platform: Platform) -> Problem | None:
    """Why steps of PLATFORM cannot run under QEMU now, or None when they can: the QEMU binary
    on PATH and a mounted, enabled binfmt_misc entry for it (binfmt.status). Only reads; OSError
    from an unreadable binfmt_misc file propagates."""
    if find_qemu(platform) is None:
        return Problem(
            f"{binary_name(platform)} is not installed", "apt-get install qemu-user-static binfmt-support"
        )
    state = binfmt.status(platform)
    why = state.problem()
    if why and state.entry is None and not binfmt.format_file(platform).is_file():
        # Debian registers no entry where the host CPU runs the binaries itself (i386 on amd64).
        return Problem(f"{why}, and qemu-user-static ships no binfmt format for it on this host", "")
    if why:
        return Problem(why, "xarch platforms --setup")
    return None


def require_emulation(platform: Platform) -> binfmt.BinfmtStatus:
    """PLATFORM's binfmt_misc state when emulation works now; else EmulationUnavailable
    (exit 3) with emulation_problem's reason and fix."""
    problem = emulation_problem(platform)
    if problem:
        raise EmulationUnavailable(f"cannot emulate {platform.name}: {problem.why} (fix: {problem.fix})")
    return binfmt.status(platform)


@contextmanager
def interpreter_inside(platform: Platform, rootfs: Path) -> Iterator[None]:
    """Make the binfmt interpreter reachable from inside ROOTFS for as long as needed.

    Without the F (fix-binary) flag the kernel opens the interpreter by path at each exec,
    after the chroot: it must then exist inside the rootfs. It is copied in at the same
    path and removed afterwards, so it never reaches a stage's output or an image (kernel
    docs admin-guide/binfmt-misc.rst, flag F). Raises EmulationUnavailable (exit 3) when
    emulation does not work or the path leads out of ROOTFS through a symlink.
    """
    state = require_emulation(platform)
    assert state.entry is not None
    if state.entry.fix_binary:
        yield
        return
    inside = rootfs / state.entry.interpreter.lstrip("/")
    if os.path.lexists(inside):
        yield  # the rootfs brings its own (not ours to remove)
        return
    real_root = rootfs.resolve()
    if real_root not in (inside.parent.resolve(strict=False), *inside.parent.resolve(strict=False).parents):
        # An absolute symlink on the way would make the copy land on the host's own files.
        raise EmulationUnavailable(f"{inside.parent} leads out of the rootfs {rootfs} through a symlink")
    created = []
    for parent in reversed(inside.relative_to(rootfs).parents):
        directory = rootfs / parent
        if not directory.exists():
            directory.mkdir()
            created.append(directory)
    shutil.copy2(Path(state.entry.interpreter).resolve(), inside)
    try:
        yield
    finally:
        inside.unlink(missing_ok=True)
        for directory in reversed(created):
            try:
                directory.rmdir()
            except OSError:
                pass  # the step put files there: they are its output, not ours


def run_emulated(
    platform: Platform,
    rootfs: Path,
    step: str,
    env: Mapping[str, str],
    *,
    cwd: str = "/",
    network: bool = False,
    log: Log,
    binds: Sequence[Bind] = (),
) -> RunResult:
    """Run shell text STEP in ROOTFS (of PLATFORM's architecture) under QEMU via binfmt_misc, in
    the sandbox as run_in_rootfs; its exit code and output tail. Raises EmulationUnavailable or
    SandboxUnavailable (exit 3); RecipeError or BuildError (exit 2) as run_in_rootfs."""
    with interpreter_inside(platform, rootfs):
        return run_in_rootfs(rootfs, step, env, cwd=cwd, network=network, log=log, binds=binds)


class EmulatedRunFailed(BuildError):
    """A binary run under qemu-user exited non-zero (exit 2)."""


def run_binary(
    platform: Platform, binary: Path, args: Sequence[str] = (), sysroot: Path | None = None
) -> str:
    """Run one PLATFORM binary on the host under qemu-user directly; its stdout.

    A dynamic binary finds its loader and libraries under SYSROOT (qemu's -L), e.g.
    /usr/aarch64-linux-gnu for Debian's cross libc. Raises EmulationUnavailable (exit 3)
    without the QEMU binary, EmulatedRunFailed (exit 2) with its last stderr line on a non-zero exit.
    """
    qemu = find_qemu(platform)
    if qemu is None:
        raise EmulationUnavailable(
            f"{binary_name(platform)} is not installed (fix: apt-get install qemu-user-static)"
        )
    prefix = ("-L", str(sysroot)) if sysroot else ()
    arguments = (*prefix, str(binary), *args)
    exit_code, stdout, stderr = local[str(qemu)][arguments].run(retcode=None)
    if exit_code != 0:
        last = stderr.strip().splitlines()[-1:] or [""]
        raise EmulatedRunFailed(f"{binary} under {binary_name(platform)} exited with {exit_code}: {last[0]}")
    return str(stdout)
