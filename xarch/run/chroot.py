"""Run one shell step isolated: inside a rootfs directory (chroot) or on the host (cross).

Isolation comes from util-linux `unshare`: a private mount namespace (every mount made
for the step vanishes with it, so nothing needs unmounting and nothing leaks to the
host), a PID namespace, and a network namespace unless the step asked for the network
(a fresh one holds only `lo`, so the step sees no network at all). As root that is all;
without root the same runs inside a user namespace that maps the caller to root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from plumbum import local

from xarch.errors import HostError, RecipeError

TAIL_LINES = 10

# Cross steps see their stage root and sysroot at these fixed paths (see CROSS_ROOT's use).
CROSS_MOUNT_BASE = PurePosixPath("/mnt")
CROSS_ROOT = CROSS_MOUNT_BASE / "xarch" / "root"
CROSS_SYSROOT = CROSS_MOUNT_BASE / "xarch" / "sysroot"
CROSS_HOME = CROSS_MOUNT_BASE / "xarch" / "home"

Log = Callable[[str], None]


class IsolationUnavailable(HostError):
    """Neither root nor user namespaces: a step cannot be run isolated on this host."""


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    tail: tuple[str, ...]  # the last TAIL_LINES lines of stdout+stderr


@cache
def user_namespaces_work() -> bool:
    """Whether this user may create a user namespace mapped to root (the rootless route)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return probe.returncode == 0


def isolation_problem() -> str | None:
    """Why steps cannot be isolated here, or None."""
    if shutil.which("unshare") is None:
        return "util-linux `unshare` is not installed (apt-get install util-linux)"
    if os.geteuid() == 0 or user_namespaces_work():
        return None
    return (
        "not root and user namespaces are disabled, so steps cannot be isolated: run as root, "
        "or enable them (sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000)"
    )


def unshare_argv(network: bool, rootless: bool | None = None) -> list[str]:
    """The `unshare` prefix; ROOTLESS (default: not root) adds a user namespace mapped to root."""
    if rootless is None:
        problem = isolation_problem()
        if problem:
            raise IsolationUnavailable(problem)
        rootless = os.geteuid() != 0
    argv = ["unshare"]
    if rootless:
        argv += ["--user", "--map-root-user"]
    argv += ["--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child"]
    if not network:
        argv.append("--net")
    return argv


# Runs on the host inside the new namespaces, before the step. `lo` is brought up so a
# step may still talk to itself; the net namespace has no other interface. The hostname
# (own UTS namespace) is fixed so the build host's name cannot leak into an output.
_LOOPBACK = """if [ "$net" = isolated ]; then ip link set lo up 2>/dev/null || true; fi
hostname xarch"""

_CHROOT_SETUP = """set -eu
net=$1 root=$2 cwd=$3 step=$4
""" + _LOOPBACK + """
mount -t tmpfs -o mode=0755,nosuid xarch-dev "$root/dev"
for node in null zero full random urandom; do
    : > "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
# A step allowed the network needs the host's resolver; the file is bound, never copied.
if [ "$net" = open ] && [ -f /etc/resolv.conf ] && [ -f "$root/etc/resolv.conf" ] \\
        && [ ! -L "$root/etc/resolv.conf" ]; then
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
fi
umask 022
exec chroot "$root" /bin/sh -c 'cd "$1" && exec /bin/sh -ec "$2"' xarch-step "$cwd" "$step"
"""

_HOST_SETUP = """set -eu
net=$1 base=$2 home=$3 cwd=$4 step=$5
shift 5
""" + _LOOPBACK + """
mount -t tmpfs -o mode=0755 xarch-mnt "$base"
mkdir -p "$home"
while [ $# -gt 0 ]; do
    mkdir -p "$2"
    mount --bind "$1" "$2"
    shift 2
done
umask 022
cd "$cwd"
exec /bin/sh -ec "$step"
"""


def _stream(argv: Sequence[str], env: Mapping[str, str], log: Log) -> RunResult:
    """Run ARGV with exactly ENV (nothing from the host's), feed each output line to LOG."""
    # `env -i` rather than Popen(env=…): plumbum merges the caller's environment in.
    env_argv = [f"{key}={value}" for key, value in sorted(env.items())]
    arguments = ("-i", *env_argv, *argv)
    command = local["env"][arguments]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    process = command.popen(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    try:
        for raw in iter(process.stdout.readline, b""):
            line = bytes(raw).decode("utf-8", "replace").rstrip("\n")  # type: ignore[arg-type]
            tail.append(line)
            log(line)
    except BaseException:
        # Interrupted (Ctrl-C, a failing log callback): unshare's --kill-child takes the step down too.
        process.kill()
        process.wait()
        raise
    return RunResult(exit_code=process.wait(), tail=tuple(tail))


def _net_word(network: bool) -> str:
    return "open" if network else "isolated"


def rootfs_command(
    rootfs: Path, step: str, *, cwd: str = "/", network: bool = False, rootless: bool | None = None
) -> list[str]:
    """The command line that runs shell text STEP with /bin/sh of ROOTFS, chrooted, in CWD."""
    rootfs = rootfs.resolve()
    if not (rootfs / "bin" / "sh").exists() and not (rootfs / "bin" / "sh").is_symlink():
        raise RecipeError(f"{rootfs} has no /bin/sh: a stage running steps needs a shell package")
    for mountpoint in ("proc", "dev"):
        (rootfs / mountpoint).mkdir(exist_ok=True)
    if not (rootfs / "tmp").exists():
        (rootfs / "tmp").mkdir()
        (rootfs / "tmp").chmod(0o1777)
    return [
        *unshare_argv(network, rootless), "/bin/sh", "-c", _CHROOT_SETUP, "xarch-setup",
        _net_word(network), str(rootfs), cwd, step,
    ]


def run_in_rootfs(
    rootfs: Path, step: str, env: Mapping[str, str], *, cwd: str = "/", network: bool = False, log: Log
) -> RunResult:
    """Run shell text STEP with /bin/sh of ROOTFS, chrooted, in CWD (a path inside ROOTFS)."""
    resolv = rootfs / "etc" / "resolv.conf"
    # An empty mount point for the host's resolver, removed after: it must not ship.
    absent = not resolv.exists() and not resolv.is_symlink()
    make_mountpoint = network and (rootfs / "etc").is_dir() and absent
    if make_mountpoint:
        resolv.touch()
    try:
        return _stream(rootfs_command(rootfs, step, cwd=cwd, network=network), env, log)
    finally:
        if make_mountpoint:
            resolv.unlink(missing_ok=True)


def host_command(
    step: str,
    *,
    binds: Sequence[tuple[Path, PurePosixPath]],
    cwd: PurePosixPath,
    network: bool = False,
    rootless: bool | None = None,
) -> list[str]:
    """The command line that runs STEP with the host's /bin/sh, BINDS (host dir, fixed path) mounted.

    The fixed paths live on a private tmpfs over CROSS_MOUNT_BASE, so every build sees
    the same paths (compilers record them in debug info and __FILE__) without touching
    the host's files and without clashing with a concurrent build.
    """
    for source, _ in binds:
        resolved = source.resolve()
        if resolved == Path(CROSS_MOUNT_BASE) or Path(CROSS_MOUNT_BASE) in resolved.parents:
            raise RecipeError(
                f"{resolved} is under {CROSS_MOUNT_BASE}, which cross steps mount over: move it")
    pairs = [str(part) for source, target in binds for part in (source.resolve(), target)]
    return [
        *unshare_argv(network, rootless), "/bin/sh", "-c", _HOST_SETUP, "xarch-setup",
        _net_word(network), str(CROSS_MOUNT_BASE), str(CROSS_HOME), str(cwd), step, *pairs,
    ]


def run_on_host(
    step: str,
    env: Mapping[str, str],
    *,
    binds: Sequence[tuple[Path, PurePosixPath]],
    cwd: PurePosixPath,
    network: bool = False,
    log: Log,
) -> RunResult:
    """Run STEP with the host's /bin/sh, BINDS mounted at their fixed paths (see host_command)."""
    return _stream(host_command(step, binds=binds, cwd=cwd, network=network), env, log)
