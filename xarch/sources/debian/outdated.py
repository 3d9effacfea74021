"""`xarch outdated`: which pinned packages have a newer version in the recipe's archives.

The lock is compared with the signed indexes of every suite the recipe's sources.debian
lists (so `bookworm-security` and `bookworm-updates` count when they are listed there; a
suite that is not listed is never read). For each platform key (`amd64`, or `BUILD->TARGET`
for a cross root) and each pinned package, the newest version of the same name installable
for the same architecture is looked up; when it is newer (dpkg's version order) the package
is outdated: old → new, the suite that has the newest version, and whether that is a
security update.

Security: a suite is a security suite when its name ends in `-security` (Debian ≥ 11) or
`/updates` (Debian ≤ 10's `buster/updates`), the names Debian's security archive uses. The
Packages indexes carry no urgency and no CVE list, and mirrors serve no .changes files,
so changelog urgency and CVE references are not read (they would need a changelog
download per package from metadata.ftp-master.debian.org, which a mirror or snapshot
does not provide).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cmp_to_key
from typing import Any

from debian.debian_support import version_compare

from xarch import platforms as platform_data
from xarch.oci.store import Store
from xarch.sources.debian.config import DebianSource
from xarch.sources.debian.lock import Lock, Sources, as_list


def is_security_suite(suite: str) -> bool:
    """Whether SUITE is a suite of Debian's security archive: `*-security` (Debian ≥ 11) or
    `*/updates` (Debian ≤ 10)."""
    return suite.endswith("-security") or suite.endswith("/updates")


@dataclass
class Outdated:
    """One pinned package with a newer version: NAME, ARCHITECTURE, OLD (locked) and NEW
    (dpkg's version order), the SUITE that has NEW (a security suite first), whether that is
    a SECURITY update, and the SETS ("image", stage names) that pin it."""

    name: str
    architecture: str
    old: str
    new: str
    suite: str
    security: bool
    sets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """This entry of `xarch outdated --json`: an object keyed by the field names."""
        return {"name": self.name, "architecture": self.architecture, "old": self.old, "new": self.new,
                "suite": self.suite, "security": self.security, "sets": self.sets}


@dataclass
class OutdatedReport:
    """What find_outdated found: PLATFORMS {platform key: [Outdated] by name}, and the SUITES read."""

    platforms: dict[str, list[Outdated]]  # platform key -> outdated packages, by name
    suites: list[str]  # the suites that were read

    @property
    def count(self) -> int:
        return sum(len(items) for items in self.platforms.values())

    @property
    def security_count(self) -> int:
        return sum(1 for items in self.platforms.values() for item in items if item.security)

    def to_json(self) -> dict[str, Any]:
        """`xarch outdated --json`: {outdated: count, security: count, suites: [suite],
        platforms: {key: [Outdated.to_json()]}}."""
        return {"outdated": self.count, "security": self.security_count, "suites": self.suites,
                "platforms": {key: [item.to_json() for item in items]
                              for key, items in sorted(self.platforms.items())}}

    def lines(self) -> list[str]:
        """`xarch outdated`'s text: per platform key `KEY: up to date`, or `KEY:` then
        `  NAME OLD → NEW (SUITE[, security]) [SETS]` (SETS unless only "image")."""
        out: list[str] = []
        for key, items in sorted(self.platforms.items()):
            if not items:
                out.append(f"{key}: up to date")
                continue
            out.append(f"{key}:")
            for item in items:
                flag = ", security" if item.security else ""
                sets = f" [{', '.join(item.sets)}]" if item.sets != ["image"] else ""
                out.append(f"  {item.name} {item.old} → {item.new} ({item.suite}{flag}){sets}")
        return out


def native_of(key: str) -> str:
    """The Debian architecture an `all` package of platform key KEY is installed for (a cross
    root's: its build machine's). UnknownPlatform (exit 2) when KEY names no platform."""
    build = key.split("->", 1)[0]
    return platform_data.get(build).debian_arch


def find_outdated(lock: Lock, source: Sources, store: Store | None = None,
                  progress: Callable[[str], None] | None = None,
                  now: datetime | None = None) -> OutdatedReport:
    """Compare LOCK with the signed indexes of SOURCE's suites. Raises what fetching the
    indexes raises (DownloadError, SignatureError, ReleaseExpired, IndexMismatch: exit 4;
    LockError: 2), and UnknownPlatform (exit 2) for a lock key naming no platform."""
    from xarch.sources.debian.lock import _candidates
    from xarch.sources.debian.packages import Candidate
    from xarch.sources.debian.release import fetch_release

    say = progress or (lambda _message: None)
    releases = []
    for item in as_list(source):
        for suite in item.suites:
            say(f"verifying {item.base_url()}/dists/{suite}/InRelease")
            releases.append((item, fetch_release(item, suite, now=now)))
    keys = {key for per in lock.packages.values() for key in per}
    arches = sorted({platform_data.get(part).debian_arch for key in keys for part in key.split("->")})
    newest: dict[tuple[str, str], Candidate] = {}  # (name, architecture) -> newest candidate
    # (name, architecture, version) -> every suite that has it: a fix published in -security and
    # then folded into a point release is in both, and is a security update either way.
    suites: dict[tuple[str, str, str], list[str]] = {}
    for arch in arches:
        for cand in _candidates(releases, arch, store, say):
            ident = (cand.name, cand.architecture)
            best = newest.get(ident)
            if best is None or version_compare(cand.version, best.version) > 0:
                newest[ident] = cand
            listed = suites.setdefault((cand.name, cand.architecture, cand.version), [])
            if cand.suite not in listed:
                listed.append(cand.suite)
    platforms: dict[str, list[Outdated]] = {}
    for set_name, per in sorted(lock.packages.items()):
        for key, entries in sorted(per.items()):
            found = platforms.setdefault(key, [])
            for entry in entries:
                cand = _newer(entry.name, entry.architecture, entry.version, native_of(key), newest)
                if cand is None:
                    continue
                same = next((o for o in found if (o.name, o.architecture, o.old, o.new)
                             == (entry.name, entry.architecture, entry.version, cand.version)), None)
                if same is not None:
                    same.sets.append(set_name)
                    continue
                having = suites.get((cand.name, cand.architecture, cand.version), [cand.suite])
                security = [suite for suite in having if is_security_suite(suite)]
                found.append(Outdated(entry.name, entry.architecture, entry.version, cand.version,
                                      (security or having)[0], bool(security), [set_name]))
    for items in platforms.values():
        items.sort(key=lambda o: (o.name, o.architecture))
    return OutdatedReport(platforms, [r.suite for _, r in releases])


def _newer(name: str, architecture: str, version: str, native: str,
           newest: Mapping[tuple[str, str], Any]) -> Any:
    """The newest candidate of NAME newer than VERSION: of the same architecture, or switched
    between `all` and the native one (a package may change Architecture between versions)."""
    other = "all" if architecture != "all" else native
    options = [c for c in (newest.get((name, architecture)),
                           newest.get((name, other)) if architecture in ("all", native) else None)
               if c is not None and version_compare(c.version, version) > 0]
    if not options:
        return None
    def by_version(a: Any, b: Any) -> int:
        return version_compare(a.version, b.version)

    return max(options, key=cmp_to_key(by_version))


def moved(source: Sources, snapshot: str | None) -> list[DebianSource]:
    """SOURCE with every snapshot-pinned archive read at SNAPSHOT (None: unchanged)."""
    sources = as_list(source)
    if snapshot is None:
        return sources
    return [item.model_copy(update={"snapshot": snapshot}) if item.snapshot is not None else item
            for item in sources]
