"""Stage roots without copying file data: overlayfs over a hard-link farm of cached package files.

A stage root used to be written file by file from .debs decompressed again on every build
(~6,800 files, lzma, ~5 s for examples/hello-c's cross root). Now, with root or without:

- the lower layer is a *farm*: the stage tree's folders and symlinks made anew, every package
  file a hard link to its bytes in the cache of unpacked package trees (xarch.sources.debian.pkgtrees), the
  few files xarch writes (dpkg database, cross files, `files:`) written; the farm lies in the
  cache folder (same file system, 0700: no other account reaches it);
- the stage root is an overlayfs mount of it with an upper and a work folder in the build's
  own folder. Every write of a step, of the step cache's replay, of `/src`, goes to the upper
  folder: opening a lower file for writing, chmod, chown, truncate or a hard link to it copies
  it up first (the kernel's overlayfs, not our code), so no step changes a cached file, and a
  step still sees and may write every file as before (the farm is owned by the id that is
  uid 0 of a step: the sandbox id as root, else the caller).

The mounts live in a private mount namespace of the xarch process (enter_private_mounts):
they vanish with it, even after SIGKILL, and no other process on the host sees them.

Without root (Linux 5.11 and later let an unprivileged user mount overlayfs in a user
namespace that owns the mount namespace), the `xarch` command first moves itself into a
user and mount namespace of its own that maps only its uid and gid, each to itself
(allow_user_namespace, enter_private_mounts): files keep their host owners, so the farm is
the caller's as its package-tree cache is, and a step's bwrap nests its user namespace in
this one as before (uid 0 of a step is still the caller). The overlay is mounted with
`userxattr` (its whiteout and opaque marks in user.overlay.*, which xarch.run.cache reads).
Why the xarch process and not each step's own namespace: bubblewrap 0.8 (Debian 12) has no
overlay option, and the step cache's replay, its snapshot of the upper folder and the
harvest of /out run in the xarch process, which must see the same merged root as the step.
The price: the process stays in that namespace until it exits, where another account's file
shows as owned by 65534 (access checks are unchanged: the kernel still uses the real ids),
so only the command enters it, never a program using xarch as a library. It is not entered,
and the root is copied from the cache as before (no lzma, the same bytes), when a forked
probe cannot mount an overlay there (an older kernel, user namespaces off), when the process
has threads (unshare refuses), or when it holds host capabilities it would lose (`verify`'s
`user` variation). The probe (a fork that mounts and writes through an overlay) costs 20 to
45 ms once per command; it keeps a host where the mount fails from being left in a namespace
for nothing.

examples/hello-c's one-line edit rebuild without root (as nobody, warm cache, a comment line
appended to hello.c each time; `xarch build -q -f xarch.yaml --platform arm64 -o oci:…`,
2-core machine under load, 3 interleaved rounds): copying the root 13.3, 10.2, 7.3 s (median
10.2 s), the overlay 0.96, 0.84, 0.97 s (median 0.96 s; as root in the same rounds 1.37,
0.87, 1.17 s); both platforms: median 19.7 s before, 2.5 s now. The index digest is the one
a root build makes (tests/integration/test_pkgtrees.py attacks the cache as nobody too).

Measured on examples/hello-c's arm64 cross root (10,731 entries, 9,265 files, 406 MB; a
2-core machine under load, best of 3): its tree from the .debs 9.4 s (lzma), from the cache
0.30 s; the root written file by file 2.35 s from memory, 10.6 s copying the cached files
(what a build without root did, and does
when it cannot enter a user namespace), a farm of hard links 0.41 s (once per distinct root:
xarch.run.stageroot keeps it), the overlay mount of a kept farm 0.005 s.

Why not the other choices: hard links straight into the stage root would let a step's
`echo >> /etc/x`, chmod or truncate reach the cache unless the files were owned by an id the
step cannot write, which makes every in-place write of a package file fail (`cp conf
/etc/app.conf` over a packaged file), a change of what steps may do; reflinks need btrfs/XFS
(not ext4, this machine's) and still cost a copy of metadata per file.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_PRIVATE = 1 << 18
MS_REC = 16384
MNT_DETACH = 2

# The euid that entered the private mount namespace (a forked child that changed ids is not in
# one of its own: it enters anew), or None.
_private: int | None = None
_userns = False  # in a user namespace of our own: overlayfs keeps its marks in user.overlay.* xattrs
_user_namespace_allowed = False
_mounted: list[Path] = []
_uppers: dict[Path, Path] = {}  # mount point → its upper folder


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def allow_user_namespace() -> None:
    """Let enter_private_mounts move this process, when it is not root, into a user namespace of
    its own for good (the `xarch` command calls it first). A process that goes on after a build
    (a test run, a program using xarch as a library) is never moved unless it asks: it would
    see every host file of another account as owned by 65534 from then on."""
    global _user_namespace_allowed
    _user_namespace_allowed = True


def enter_private_mounts() -> bool:
    """Move this process into a mount namespace of its own, with private propagation, so overlay
    mounts never reach the host's and die with the process. True when it is in one.

    As root that is all. Without root (allowed by allow_user_namespace) the process first enters
    a user namespace of its own that maps only its uid and gid, each to itself, so files keep
    their owners and steps their ids; it goes there only when a child process showed that
    overlayfs mounts there (Linux 5.11 or later, user namespaces allowed), and never while it
    holds capabilities on the host (`verify`'s `user` variation reads /root with
    CAP_DAC_READ_SEARCH, which a user namespace would take away). Call it before threads
    start: unshare(CLONE_NEWUSER) refuses a process with threads (then False: roots are copied).
    """
    global _private, _userns
    if _private == os.geteuid():
        return True
    from xarch.run.sandbox import SandboxUnavailable, running_as_root

    try:
        as_root = running_as_root()
    except SandboxUnavailable:
        return False  # a bad XARCH_SANDBOX_ID: roots are copied, and a step says why it cannot run
    if as_root:
        if not _unshare(CLONE_NEWNS):
            return False
        _userns = False
    else:
        if not _user_namespace_allowed or threading.active_count() > 1 or _holds_capabilities():
            return False
        if not _overlay_works_in_a_child() or not _enter_user_namespace():
            return False
        _userns = True
    _private = os.geteuid()
    return True


def _unshare(flags: int) -> bool:
    """unshare(FLAGS), then make every mount private (never mount where it could reach the host)."""
    libc = _libc()
    if libc.unshare(flags) != 0:
        return False
    return libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0


def _enter_user_namespace() -> bool:
    """Enter a user and a mount namespace mapping this process's uid and gid to themselves."""
    uid, gid = os.geteuid(), os.getegid()
    if _libc().unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        return False
    try:
        Path("/proc/self/setgroups").write_text("deny")  # required before an unprivileged gid_map
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1\n")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1\n")
    except OSError:
        return False
    return _libc().mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0


def _holds_capabilities() -> bool:
    """Whether this process has an effective capability (it would lose it in a user namespace)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16) != 0
    except (OSError, ValueError):
        pass
    return True


def _overlay_works_in_a_child() -> bool:
    """Whether a forked child can enter a user namespace and mount an overlay with a copy-up in a
    temporary folder (one fork, a few ms). This process is not changed whatever the answer."""
    try:
        top = Path(tempfile.mkdtemp(prefix="xarch-overlay-probe-"))
    except OSError:
        return False
    try:
        for name in ("lower", "upper", "work", "merged"):
            (top / name).mkdir()
        (top / "lower" / "file").write_bytes(b"lower")
        pid = os.fork()
        if pid == 0:  # the child: only system calls, then _exit (no Python clean-up runs twice)
            code = 1
            try:
                if _enter_user_namespace() and _mount_overlay(
                    top / "lower", top / "upper", top / "work", top / "merged", userns=True
                ):
                    with open(top / "merged" / "file", "ab") as handle:
                        handle.write(b"+upper")
                    code = 0 if (top / "lower" / "file").read_bytes() == b"lower" else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0 and (top / "upper" / "file").is_file()
    except OSError:
        return False
    finally:
        work = top / "work" / "work"  # made by overlayfs with mode 000
        if work.is_dir():
            work.rmdir()
        shutil.rmtree(top, ignore_errors=True)


def available() -> bool:
    """Whether stage roots may be overlay mounts now (in a private mount namespace, as root or in
    a user namespace of this process's own: see enter_private_mounts)."""
    return _private is not None and _private == os.geteuid()


def opaque_xattr() -> str:
    """The xattr by which overlayfs marks a folder of the upper layer opaque in this process's
    mounts: trusted.overlay.opaque as root, user.overlay.opaque in a user namespace."""
    return "user.overlay.opaque" if _userns else "trusted.overlay.opaque"


def _usable_path(path: Path) -> bool:
    # overlayfs reads ',' and ':' (and '\\' escapes) in its options; such folders are not used.
    return not any(char in str(path) for char in ",:\\\n")


def mount(lower: Path, upper: Path, work: Path, target: Path) -> bool:
    """Mount overlayfs at TARGET: LOWER read-only, writes to UPPER (WORK: its empty work folder).
    False (nothing mounted) when it cannot be (then the caller writes TARGET itself)."""
    if not available() or not all(_usable_path(p) for p in (lower, upper, work, target)):
        return False
    if not _mount_overlay(lower, upper, work, target, userns=_userns):
        return False
    _mounted.append(target)
    _uppers[target] = upper
    return True


def _mount_overlay(lower: Path, upper: Path, work: Path, target: Path, userns: bool) -> bool:
    # Redirects off: renaming a lower folder fails with EXDEV (mv then copies), so every
    # change of the root is in the upper folder as itself (xarch.run.cache.Snapshot walks only
    # that); metacopy=off: a chmod copies the data up too. In a user namespace overlayfs keeps
    # its marks in user.* xattrs (userxattr), which allows redirect_dir=nofollow only (off
    # would still follow redirects: the kernel refuses that with userxattr).
    if userns:
        marks = "redirect_dir=nofollow,metacopy=off,userxattr"
    else:
        marks = "redirect_dir=off,metacopy=off"
    options = f"lowerdir={lower},upperdir={upper},workdir={work},{marks}"
    return _libc().mount(b"overlay", str(target).encode(), b"overlay", 0, options.encode()) == 0


def upper_of(root: Path) -> Path | None:
    """The upper folder of the overlay mounted at ROOT by this process, or None: everything in ROOT
    that is not the farm's (which is already the sandbox id's) is there."""
    return _uppers.get(root)


def unmount_all() -> None:
    """Detach every overlay this process mounted, newest first."""
    libc = _libc()
    while _mounted:
        target = _mounted.pop()
        _uppers.pop(target, None)
        libc.umount2(str(target).encode(), MNT_DETACH)


@contextmanager
def stage_mounts() -> Iterator[None]:
    """For one build: a private mount namespace (see enter_private_mounts), and every stage root's
    overlay unmounted at the end, before the build folder is removed."""
    enter_private_mounts()
    try:
        yield
    finally:
        unmount_all()
