"""Debian packages as pinned inputs: signed indexes, a deterministic resolver, a lock file,
verified downloads and an unpacker that never runs maintainer scripts (so no emulation).

Entry points: `resolve_lock` / `Lock` (lock.py), `fetch_packages` (fetch.py),
`install_packages` / `write_accounts` (install.py), `run_lock` (commands.py).
"""

from xarch.sources.debian.config import DebianSource, PackageSelection, PlatformPackages
from xarch.sources.debian.errors import DebianError

__all__ = ["DebianError", "DebianSource", "PackageSelection", "PlatformPackages"]
