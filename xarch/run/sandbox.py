"""The sandbox every build step runs in: bubblewrap (`bwrap`) in a user namespace.

What a step gets, whoever runs xarch:

- uid 0 / gid 0 of its own **user namespace**, never the host's root. Without root the
  caller's uid is mapped to 0 (as rootless podman maps a user). As root, xarch first becomes
  SANDBOX_ID (`setpriv --reuid`), an unprivileged host id no account uses, and that id is
  mapped to 0; the stage root on disk is handed to it (`hand_over`) so the step can write it.
- its own **mount namespace** whose root is the stage root, entered with `pivot_root`
  and with the old root detached (bwrap's `--bind … /`), so no host path is reachable
  ("double chroot", `/proc/1/root` and relative walks end at the stage root);
  PID, IPC and UTS namespaces (hostname `xarch`); a **network namespace** holding only `lo`
  unless the step says `network: true` (then the host's resolv.conf is bound over the stage's).
- the **capabilities** of a rootless podman container (PODMAN_CAPS, podman's default set,
  inside the user namespace only), no_new_privs, a minimal /dev (null zero full random
  urandom tty, fd links) and a fresh /proc.

Why bubblewrap and not util-linux `unshare` plus a pivot_root init of our own: bwrap is
the maintained tool that does all of the above in one exec (Debian: bubblewrap, used by
Flatpak), including the capability set and no_new_privs. It cannot map uid 0 to an
arbitrary host id itself (it maps the caller's uid), so a root build first drops to
SANDBOX_ID with setpriv; that gives requirement "never the host's real root" without
owning a helper in C. It maps one id only: `chown` inside a step to another uid fails,
as in a rootless container without subordinate ids; stage outputs are owned 0:0 anyway
(xarch.run.rootfs.harvest), so nothing of the host's accounts reaches an image.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from xarch.errors import HostError

# An unprivileged host id no account uses (above systemd's container ranges' common
# allocations, below 2^31 so no tool reads it as negative). XARCH_SANDBOX_ID overrides it.
DEFAULT_SANDBOX_ID = 2_100_000_000

# podman's default capability set (containers.conf `default_capabilities`); in a user
# namespace they act on the namespace's own objects only.
PODMAN_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
)

FIX_USERNS = "sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1"
# Ubuntu 24.04 and later confine unprivileged user namespaces with AppArmor.
APPARMOR_USERNS = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")


def _userns_fix() -> str:
    try:
        restricted = APPARMOR_USERNS.read_text().strip() == "1"
    except OSError:
        restricted = False
    return "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" if restricted else FIX_USERNS


class SandboxUnavailable(HostError):
    """bubblewrap is missing or cannot create a user namespace on this host (exit 3)."""


def _mapped(ident: int) -> bool:
    """Whether host-side id IDENT exists in this process's user namespace (/proc/self/uid_map)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().splitlines()
    except OSError:
        return True
    for line in lines:
        inside, _, count = (int(word) for word in line.split())
        if inside <= ident < inside + count:
            return True
    return False


def running_as_root() -> bool:
    """Whether steps take the root route (drop to SANDBOX_ID first).

    uid 0 in a user namespace that does not map SANDBOX_ID (a rootless container) is
    already unprivileged on the host: it takes the rootless route, mapping itself to 0.
    """
    return os.geteuid() == 0 and _mapped(sandbox_id())


def sandbox_id() -> int:
    """The host uid (= gid) that stands for uid 0 of a step when xarch runs as root."""
    raw = os.environ.get("XARCH_SANDBOX_ID", "")
    if raw:
        if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**32 - 1:
            raise SandboxUnavailable(f"XARCH_SANDBOX_ID={raw!r} is not a host uid above 0")
        return int(raw)
    return DEFAULT_SANDBOX_ID


def host_owner() -> int:
    """Who owns a stage root on disk while steps run: SANDBOX_ID as root, else the caller."""
    return sandbox_id() if running_as_root() else os.geteuid()


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def drop_prefix(rootless: bool) -> list[str]:
    """What runs before bwrap: as root, become SANDBOX_ID; else shed ambient capabilities.

    bwrap refuses to start with capabilities it did not get from being setuid (a caller
    run with ambient caps, like `verify --variations user`), so they are cleared first.
    """
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    if rootless:
        return [setpriv, "--inh-caps=-all", "--ambient-caps=-all"]
    ident = sandbox_id()
    return [setpriv, f"--reuid={ident}", f"--regid={ident}", "--clear-groups"]


@cache
def _probe(rootless: bool) -> str | None:
    bwrap = _bwrap()
    assert bwrap is not None
    argv = [*drop_prefix(rootless), bwrap, "--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0",
            "--ro-bind", "/", "/", "true"]
    probe = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/")
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]


def sandbox_problem(probe: bool = True) -> str | None:
    """Why steps cannot be sandboxed on this host (one line with the fix), or None. Without
    PROBE, only what needs no trial run of bwrap (installed tools, the sandbox id) is checked."""
    if _bwrap() is None:
        return "bubblewrap (bwrap) is not installed (fix: apt-get install bubblewrap)"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed (fix: apt-get install util-linux)"
    if running_as_root():
        try:
            account = pwd.getpwuid(sandbox_id()).pw_name
        except KeyError:
            account = ""
        if account:
            return (f"the sandbox id {sandbox_id()} is account {account}'s uid "
                    "(fix: set XARCH_SANDBOX_ID to an unused uid)")
    why = _probe(not running_as_root()) if probe else None
    if why:
        return f"bwrap cannot create a user namespace here ({why}) (fix: {_userns_fix()})"
    return None


def require_sandbox(probe: bool = True) -> None:
    """Raise SandboxUnavailable (exit 3) naming what is missing when steps cannot run in the
    sandbox here (user and mount namespaces, bubblewrap); return otherwise. PROBE: as for
    sandbox_problem."""
    problem = sandbox_problem(probe)
    if problem:
        raise SandboxUnavailable(problem)


def hand_over(root: Path) -> None:
    """Own everything under ROOT by host_owner(), so uid 0 of a step may write it (as root only).

    Without root every file is the caller's already, which the step sees as its own.
    """
    if not running_as_root():
        return
    from xarch.run.overlay import upper_of

    owner = sandbox_id()
    # An overlay stage root's lower layer is the sandbox id's already (xarch.run.overlay): only
    # what was written since, all in the upper folder, needs a look (through the mount point).
    upper = upper_of(Path(root))
    top = os.fspath(upper if upper is not None else root)
    for folder, dirs, files in os.walk(top):
        for name in (".", *dirs, *files):
            path = os.path.join(os.fspath(root), os.path.relpath(os.path.join(folder, name), top))
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue  # an overlay whiteout: the path is deleted in ROOT
            if info.st_uid != owner or info.st_gid != owner:
                os.lchown(path, owner, owner)


@dataclass(frozen=True)
class Bind:
    """Host path SOURCE mounted at TARGET in the sandbox (read-write unless READ_ONLY)."""

    source: Path
    target: PurePosixPath
    read_only: bool = False
    # Staged (as root): bound first at a path the sandbox id can reach, see bwrap_argv.
    staged: bool = True

    def argv(self, source: str | None = None) -> list[str]:
        """bubblewrap's arguments for this mount (`--bind`/`--ro-bind SOURCE TARGET`); SOURCE
        overrides the host path (a staged copy)."""
        return ["--ro-bind" if self.read_only else "--bind", source or str(self.source), str(self.target)]


DEV_PROC = ("--dev", "/dev", "--proc", "/proc")

# As root, before dropping to SANDBOX_ID: in a private mount namespace, bind each staged
# source at STAGING/<n>. bwrap (run as SANDBOX_ID) resolves its sources itself, and the
# stage root usually lies below a folder only root may enter (a 0700 temporary folder);
# the bind makes it reachable without opening that folder to anyone on the host.
_STAGE_BINDS = """set -eu
staging=$1 n=0
shift
while [ "$1" != -- ]; do
    mkdir "$staging/$n"
    mount --bind "$1" "$staging/$n"
    n=$((n + 1))
    shift
done
shift
exec "$@"
"""


def new_staging() -> Path:
    """A fresh folder every account may enter, for bwrap_argv's STAGING (the caller removes it)."""
    base = "/run" if os.access("/run", os.W_OK) else "/tmp"
    staging = Path(tempfile.mkdtemp(prefix="xarch-sandbox-", dir=base))
    staging.chmod(0o755)
    return staging


def bwrap_argv(
    mounts: Sequence[Bind | str],
    command: Sequence[str],
    *,
    network: bool,
    rootless: bool | None = None,
    staging: Path | None = None,
    cwd: str = "/",
    ids: tuple[int, int] = (0, 0),
) -> list[str]:
    """The full command line: bwrap with MOUNTS (Binds, or bwrap words) in order, then COMMAND in CWD
    as IDS (uid, gid inside the user namespace; both map to the one host id that runs bwrap).

    ROOTLESS (default: not root) says whether the caller is already an unprivileged user;
    otherwise the command binds the staged sources below STAGING (an empty folder from
    new_staging, required then) in a private mount namespace and drops to SANDBOX_ID.
    Raises SandboxUnavailable when the host cannot sandbox.
    """
    if rootless is None:
        require_sandbox()
        rootless = not running_as_root()
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxUnavailable(sandbox_problem() or "bubblewrap is not installed")
    staged = [m for m in mounts if isinstance(m, Bind) and m.staged and not rootless]
    prefix: list[str] = []
    if staged:
        if staging is None:
            raise ValueError("a root sandbox with binds needs a staging folder (new_staging())")
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        prefix = [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _STAGE_BINDS,
                  "xarch-binds", str(staging), *(str(m.source) for m in staged), "--"]
    argv = [*prefix, *drop_prefix(rootless), bwrap,
            "--unshare-user", "--uid", str(ids[0]), "--gid", str(ids[1]),
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "xarch", "--die-with-parent", "--new-session"]
    if not network:
        argv.append("--unshare-net")  # a fresh net namespace: only lo, brought up by bwrap
    for mount in mounts:
        if isinstance(mount, str):
            argv.append(mount)
        elif mount in staged:
            assert staging is not None
            argv += mount.argv(str(staging / str(staged.index(mount))))
        else:
            argv += mount.argv()
    argv += ["--cap-drop", "ALL"]
    for cap in PODMAN_CAPS if ids[0] == 0 else ():  # another uid has none, as under a runtime
        argv += ["--cap-add", cap]
    argv += ["--chdir", cwd, "--", *command]
    return argv
