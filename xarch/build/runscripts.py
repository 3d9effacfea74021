"""Opt-in: the packages' own maintainer scripts, run (`packages: {…, maintainer_scripts: run}`).

By default no script runs and xarch reproduces their effects (xarch.sources.debian.effects).
A package set that says `maintainer_scripts: run` gets that first, and then its packages'
scripts themselves, as dpkg runs them on a fresh install: every `preinst install`, then
every `postinst configure ''`, packages in lock order, each with dpkg's environment
(DPKG_MAINTSCRIPT_PACKAGE, DPKG_MAINTSCRIPT_ARCH, DPKG_MAINTSCRIPT_NAME,
DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1, DPKG_ROOT empty, DPKG_ADMINDIR, DPKG_RUNNING_VERSION)
plus the steps' fixed one (SOURCE_DATE_EPOCH, LANG/LC_ALL C.UTF-8, TZ UTC, PATH;
xarch.run.steps.fixed_env) and debconf's noninteractive frontend, stdin /dev/null.

Where: the step sandbox (xarch.run.sandbox: a user namespace, no network), natively when
the root's architecture is the host's, under QEMU (binfmt_misc) otherwise, in a copy of
the set's tree on disk. The sandbox maps one id: a script that `chown`s to another
account fails, and the build stops naming the package and script (exit 2).

What is taken back, so that the image stays reproducible (`xarch verify`):
- an entry the scripts left as it was keeps its entry (owner, times, xattrs; a setuid or
  setgid bit the ownership hand-over cleared is not a change);
- a changed or new one is owned as before the scripts (0:0 when new: the sandbox cannot
  chown), its time is the epoch, its file capability (security.capability) is kept;
- new files the design treats as logs, caches or locks are dropped (DROPPED): /var/log/*,
  debconf's database, ldconfig's aux-cache, `/etc/*-` backups, dpkg's locks and `-old`
  files, `__pycache__`, /tmp, and the sandbox's /dev and /proc mount points;
- what the scripts removed is gone.
"""

from __future__ import annotations

import fnmatch
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from xarch.errors import BuildError
from xarch.oci.tree import Entry, Tree
from xarch.platforms import Platform
from xarch.sources.debian.lock import LockedPackage

DROPPED = ("var/log/*", "var/cache/debconf/*", "var/cache/ldconfig/aux-cache", "etc/*-", "etc/.pwd.lock",
           "var/lib/dpkg/*-old", "var/lib/dpkg/lock*", "var/lib/dpkg/triggers/*", "*__pycache__*",
           "root/.cache*", "tmp", "tmp/*", "dev", "dev/*", "proc", "proc/*")  # the last: the sandbox's
INFO = "var/lib/dpkg/info"


class ScriptFailed(BuildError):
    """A maintainer script exited non-zero (exit 2); the message names the package and script."""


def calls(tree: Tree, packages: Sequence[LockedPackage]) -> list[tuple[str, str, str, list[str]]]:
    """(package, architecture, script path, arguments) in the order dpkg runs them on a
    fresh install (Debian Policy 6.5: `preinst install`, then `postinst configure ""`);
    the scripts are those kept in /var/lib/dpkg/info (install.py). Raises nothing."""
    found = []
    for script, args in (("preinst", ["install"]), ("postinst", ["configure", ""])):
        for pkg in packages:
            for name in (f"{pkg.name}:{pkg.architecture}", pkg.name):
                if f"{INFO}/{name}.{script}" in tree:
                    found.append((pkg.name, pkg.architecture, f"/{INFO}/{name}.{script}", [script, *args]))
                    break
    return found


def shell_text(tree: Tree, packages: Sequence[LockedPackage]) -> str:
    """The shell text that runs every script (see module doc); the first failure ends it.

    Sets the DPKG_* variables dpkg exports to maintainer scripts (dpkg(1), ENVIRONMENT)
    and a noninteractive debconf. Raises nothing."""
    dpkg = next((p.version for p in packages if p.name == "dpkg"), "")
    lines = [
        "set -e",
        f"export DPKG_ROOT= DPKG_ADMINDIR=/var/lib/dpkg DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 "
        f"DPKG_RUNNING_VERSION={shlex.quote(dpkg)}",
        "export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true",
        'run() { package=$1 arch=$2 script=$3 name=$4; shift 4',
        '  DPKG_MAINTSCRIPT_PACKAGE=$package DPKG_MAINTSCRIPT_ARCH=$arch DPKG_MAINTSCRIPT_NAME=$name '
        '"$script" "$@" </dev/null || { code=$?; echo "xarch: $package $name failed with exit code $code"; '
        'exit 1; }',
        "}",
    ]
    for package, arch, script, args in calls(tree, packages):
        name, *rest = args
        words = [package, arch, script, name, *rest]
        lines.append("run " + " ".join(shlex.quote(w) for w in words))
    return "\n".join(lines) + "\n"


def run_maintainer_scripts(tree: Tree, packages: Sequence[LockedPackage], platform: Platform, epoch: int,
                           log: Callable[[str], None]) -> int:
    """Run the scripts of PACKAGES (already in TREE) and take their changes back into TREE;
    the number of scripts run. EPOCH (seconds since 1970) is SOURCE_DATE_EPOCH and every
    changed entry's mtime. Raises ScriptFailed (exit 2) with the script's last output lines,
    BuildError (exit 2) without /bin/sh, SandboxUnavailable or EmulationUnavailable (exit 3)."""
    from xarch import platforms
    from xarch.run import qemu
    from xarch.run.chroot import run_in_rootfs
    from xarch.run.rootfs import harvest, materialize
    from xarch.run.steps import fixed_env

    todo = calls(tree, packages)
    if not todo:
        return 0
    if "bin/sh" not in tree and "usr/bin/sh" not in tree:
        raise BuildError("maintainer_scripts: run needs /bin/sh in the package set: add dash")
    env = fixed_env(platform, epoch)
    with tempfile.TemporaryDirectory(prefix="xarch-scripts-") as folder:
        root = Path(folder) / "root"
        root.mkdir()
        materialize(tree, root)
        text = shell_text(tree, packages)
        if platform.debian_arch == platforms.host().debian_arch:
            result = run_in_rootfs(root, text, env, log=log)
        else:
            result = qemu.run_emulated(platform, root, text, env, log=log)
        if result.exit_code != 0:
            failed = [line for line in result.tail if line.startswith("xarch: ") and " failed " in line]
            what = failed[-1].removeprefix("xarch: ") if failed else f"exit code {result.exit_code}"
            raise ScriptFailed(f"maintainer scripts ({platform.name}): {what}", details=result.tail)
        _take_back(tree, harvest(root, "", "", "maintainer scripts"), epoch)
    return len(todo)


def _take_back(tree: Tree, found: list[Entry], epoch: int) -> None:
    """Replace TREE's entries with FOUND (the root after the scripts), as the module doc says."""
    kept: dict[str, Entry] = {}
    for entry in found:
        if not entry.path:
            continue
        before = tree.entries.get(entry.path)
        if before is not None and _same(before, entry):
            kept[entry.path] = before
            continue
        if before is None and any(fnmatch.fnmatchcase(entry.path, glob) for glob in DROPPED):
            continue
        uid, gid = (before.uid, before.gid) if before is not None else (0, 0)
        data = entry.read() if entry.type == "file" else None
        kept[entry.path] = replace(entry, uid=uid, gid=gid, mtime=epoch, data=data, source=None)
    tree.entries = kept


def _same(before: Entry, after: Entry) -> bool:
    # Handing the copy to the sandbox's id (chown) clears setuid/setgid bits: not the scripts'.
    lost = before.type == "file" and after.mode == before.mode & ~0o6000
    if before.type != after.type or before.linkname != after.linkname:
        return False
    if before.mode != after.mode and not lost:
        return False
    if before.type != "file":
        return True
    # materialize writes no xattrs: a file the scripts did not touch comes back without them.
    if after.xattrs and after.xattrs != before.xattrs:
        return False
    return before.size == after.size and before.read() == after.read()
