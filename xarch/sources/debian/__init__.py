"""Debian packages as pinned inputs: signed indexes, a deterministic resolver, a lock file,
verified downloads and an unpacker that never runs maintainer scripts (so no emulation).

Flow: resolve_lock (lock.py) -> Lock.dump/Lock.load -> fetch_packages (fetch.py) ->
install_packages + write_accounts (install.py). `run_lock`/`make_lock_command`
(commands.py) are the `xarch lock` command.
"""

from xarch.sources.debian.commands import lock_path, make_lock_command, run_lock
from xarch.sources.debian.config import DebianSource, PackageSelection, PlatformPackages
from xarch.sources.debian.deb import PathFilter
from xarch.sources.debian.errors import DebianError
from xarch.sources.debian.fetch import fetch_packages
from xarch.sources.debian.install import Group, InstallReport, User, install_packages, write_accounts
from xarch.sources.debian.lock import Lock, LockedPackage, lock_matches, mirror_of, resolve_lock

__all__ = [
    "DebianError", "DebianSource", "Group", "InstallReport", "Lock", "LockedPackage", "PackageSelection",
    "PathFilter", "PlatformPackages", "User", "fetch_packages", "install_packages", "lock_matches",
    "lock_path", "make_lock_command", "mirror_of", "resolve_lock", "run_lock", "write_accounts",
]
