"""`xarch lock --update [PKG…]`: resolve again keeping pins, and report what changed.

With no PKG every set is resolved from scratch (the newest versions the archives offer).
With PKG names, in each set and platform the named packages *and everything they need*
(their dependency closure, resolved newest-first as `xarch lock` would) are freed; every
other locked package is pinned to its locked version, so it stays unless the archive no
longer has that version (then it is resolved afresh and a line says so). An entry that
did not change is carried over as it was, so its lines in xarch.lock keep their bytes.

The change report (ChangeReport) compares two locks per platform key (`amd64`, or
`amd64->arm64` for a cross root): packages added, removed, upgraded and downgraded
(old → new, with the sets they are in), and per set the installed size (Installed-Size
fields, KiB; an estimate, Debian Policy §5.6.20) and download size (bytes) before and after.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from debian.debian_support import version_compare

from xarch.sources.debian.errors import LockError
from xarch.sources.debian.lock import Lock, LockedPackage

if TYPE_CHECKING:
    from xarch.sources.debian.packages import Candidate
    from xarch.sources.debian.resolver import Universe

# Debian Policy §5.6.1; fullmatch, so a trailing newline is not taken ("$" matches before one).
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def installed_for(entry: LockedPackage, native: str) -> str:
    """The architecture ENTRY is installed for: `all` counts as the universe's native one."""
    return native if entry.architecture == "all" else entry.architecture


def check_names(lock: Lock, names: Sequence[str], where: str = "xarch.lock") -> None:
    """LockError (exit 2, one line) for a name that is not a package the lock pins."""
    pinned = {p.name for per in lock.packages.values() for pkgs in per.values() for p in pkgs}
    for name in names:
        if not _NAME.fullmatch(name):
            raise LockError(f"--update {name!r}: not a Debian package name")
        if name not in pinned:
            raise LockError(f"--update {name}: {where} pins no package named {name} "
                            "(name a package the lock holds, or run `xarch lock --update` for all)")


class Pinner:
    """The `pinning` hook of resolve_lock: keeps OLD's pins except NAMES and what they need.

    NAMES empty: nothing is pinned (a full update). Either way it records the Installed-Size
    the archive gives for each old entry, for the report of a lock that did not record it.
    """

    def __init__(self, old: Lock, names: Sequence[str], say: Callable[[str], None]) -> None:
        self.old = old
        self.names = frozenset(names)
        self.say = say
        self.sizes: dict[tuple[str, str, str], int] = {}  # (name, version, architecture) -> KiB
        self.freed: dict[tuple[str, str], list[str]] = {}  # (set, platform key) -> freed keys

    def __call__(self, set_name: str, key: str, universe: Universe, recommends: bool) -> Universe:
        from xarch.sources.debian.resolver import Resolver

        entries = self.old.packages.get(set_name, {}).get(key, [])
        for entry in entries:
            for cand in universe.by_name.get(entry.name, []):
                if cand.version == entry.version and cand.architecture == entry.architecture \
                        and cand.installed_size is not None:
                    self.sizes[(entry.name, entry.version, entry.architecture)] = cand.installed_size
        if not self.names:
            return universe
        named = [f"{e.name}:{installed_for(e, universe.arch)}" for e in entries if e.name in self.names]
        free: set[tuple[str, str]] = set()
        if named:
            closure = Resolver(universe, recommends).resolve(named)
            free = {(c.name, universe.arch_of(c)) for c in closure.packages.values()}
            self.freed[(set_name, key)] = sorted(closure.packages)
        pins = {(e.name, installed_for(e, universe.arch)): e.version for e in entries
                if (e.name, installed_for(e, universe.arch)) not in free}
        narrowed, gone = pinned_universe(universe, pins)
        for name, arch, version in gone:
            self.say(f"{set_name} on {key}: {name} {version} ({arch}) is no longer in the archive; "
                     "it is resolved again")
        return narrowed


def pinned_universe(universe: Universe, pins: Mapping[tuple[str, str], str]
                    ) -> tuple[Universe, list[tuple[str, str, str]]]:
    """UNIVERSE with only the pinned version of each (name, installed-for architecture) in PINS.

    A pin whose version the archive no longer has leaves that name's versions as they are;
    those come back as (name, architecture, version). Providers are narrowed the same way.
    """
    from xarch.sources.debian.resolver import Universe

    by_name: dict[str, list[Candidate]] = {}
    gone: list[tuple[str, str, str]] = []
    for name, cands in universe.by_name.items():
        allowed: dict[str, str | None] = {}
        for arch in dict.fromkeys(universe.arch_of(c) for c in cands):
            want = pins.get((name, arch))
            if want is not None and not any(c.version == want and universe.arch_of(c) == arch for c in cands):
                gone.append((name, arch, want))
                want = None
            allowed[arch] = want
        by_name[name] = [c for c in cands if allowed[universe.arch_of(c)] in (None, c.version)]
    narrowed = Universe(universe.arch, by_name, universe.foreign)
    universe.providers("")  # builds the full index once; the narrowed one filters it
    kept = {id(c) for cands in by_name.values() for c in cands}
    assert universe._providers is not None
    narrowed._providers = {virtual: [(c, v) for c, v in providers if id(c) in kept]
                           for virtual, providers in universe._providers.items()}
    return narrowed, gone


# The input digests resolve_lock makes; any other (another source's section of the lock) is kept.
DEBIAN_INPUTS = frozenset({"source", "selections", "platforms", "cross"})


def keep_unchanged(old: Lock, new: Lock) -> Lock:
    """NEW with every entry that OLD pins identically (same file, same hash) taken from OLD,
    so the lines of an unchanged package keep their bytes (e.g. no new installed_size line).

    Only the Debian entries are re-resolved here: what else OLD holds (another field of Lock,
    an input digest resolve_lock does not make) is carried over as it was."""
    for name, value in old.inputs.items():
        if name not in DEBIAN_INPUTS:
            new.inputs.setdefault(name, value)
    for item in fields(Lock):
        if item.name not in ("inputs", "releases", "packages") and not getattr(new, item.name):
            setattr(new, item.name, getattr(old, item.name))
    for set_name, per in new.packages.items():
        for key, entries in per.items():
            before = {(p.name, p.architecture, p.version, p.sha256): p
                      for p in old.packages.get(set_name, {}).get(key, [])}
            per[key] = [before.get((p.name, p.architecture, p.version, p.sha256), p) for p in entries]
    return new


@dataclass
class Change:
    """One package that differs between two locks on a platform key: NAME, ARCHITECTURE, OLD
    and NEW versions, and the SETS ("image", stage names) it is in."""

    name: str
    architecture: str
    old: str | None  # None: added
    new: str | None  # None: removed
    sets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """This change in `xarch lock --update --json`: an object keyed by the field names."""
        return {"name": self.name, "architecture": self.architecture, "old": self.old, "new": self.new,
                "sets": self.sets}


@dataclass
class SetSize:
    """One set's sizes before and after: installed KiB (the sum of the known Installed-Size
    fields) and download bytes. An entry of unknown size that is on both sides adds 0 to both,
    so the change stays exact; one on a single side (an old version the archive dropped, in a
    lock written before installed_size was recorded) makes the installed change unknown."""

    installed_old: int
    installed_new: int
    download_old: int
    download_new: int
    unknown: int  # entries whose Installed-Size neither the lock nor the archive gave
    uncertain: int = 0  # of those, entries on one side only: the installed change is not known

    @property
    def installed_change(self) -> int | None:
        return None if self.uncertain else self.installed_new - self.installed_old

    def to_json(self) -> dict[str, int | None]:
        """{installed_kib_old, installed_kib_new, installed_kib_change, download_bytes_old,
        download_bytes_new, download_bytes_change, installed_size_unknown}; installed_kib_change
        is None when the change is not known."""
        return {"installed_kib_old": self.installed_old, "installed_kib_new": self.installed_new,
                "installed_kib_change": self.installed_change,
                "download_bytes_old": self.download_old, "download_bytes_new": self.download_new,
                "download_bytes_change": self.download_new - self.download_old,
                "installed_size_unknown": self.unknown}


@dataclass
class PlatformChanges:
    """The changes on one platform key: packages ADDED, REMOVED, UPGRADED and DOWNGRADED
    (dpkg's version order), each sorted by name, and SIZES {set name: SetSize}."""

    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    upgraded: list[Change] = field(default_factory=list)
    downgraded: list[Change] = field(default_factory=list)
    sizes: dict[str, SetSize] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.upgraded or self.downgraded)


@dataclass
class ChangeReport:
    """What `xarch lock --update` changed: PLATFORMS {platform key: PlatformChanges}, RELEASES
    {suite: (old Date, new Date)} whose date moved, SNAPSHOT (old, new) when the pin moved."""

    platforms: dict[str, PlatformChanges]
    releases: dict[str, tuple[str | None, str | None]]  # suite -> (old date, new date), when they differ
    snapshot: tuple[str | None, str | None] | None = None  # (old, new) when `--snapshot` moved it

    @property
    def changed(self) -> bool:
        return any(p.changed for p in self.platforms.values())

    def to_json(self) -> dict[str, Any]:
        """`xarch lock --update --json`: {changed, snapshot: {old, new} or None, releases:
        {suite: {old, new}}, platforms: {key: {added, removed, upgraded, downgraded: [Change],
        sizes: {set: SetSize}}}}, each part as its to_json gives it."""
        return {
            "changed": self.changed,
            "snapshot": None if self.snapshot is None else {"old": self.snapshot[0], "new": self.snapshot[1]},
            "releases": {suite: {"old": old, "new": new}
                         for suite, (old, new) in sorted(self.releases.items())},
            "platforms": {
                key: {"added": [c.to_json() for c in p.added], "removed": [c.to_json() for c in p.removed],
                      "upgraded": [c.to_json() for c in p.upgraded],
                      "downgraded": [c.to_json() for c in p.downgraded],
                      "sizes": {name: size.to_json() for name, size in sorted(p.sizes.items())}}
                for key, p in sorted(self.platforms.items())
            },
        }

    def lines(self) -> list[str]:
        """The text report: `snapshot: OLD → NEW`; per platform key `KEY: no changes` or
        `  ~ name old → new`, `  + name new`, `  - name old` and each set's size change
        (installed KiB, download bytes); `xarch.lock: no package changed` when nothing did."""
        out: list[str] = []
        if self.snapshot is not None:
            out.append(f"snapshot: {self.snapshot[0]} → {self.snapshot[1]}")
        for key, plat in sorted(self.platforms.items()):
            if not plat.changed:
                out.append(f"{key}: no changes")
                continue
            out.append(f"{key}:")
            for change in plat.upgraded + plat.downgraded:
                out.append(f"  ~ {change.name} {change.old} → {change.new}{_sets(change)}")
            for change in plat.added:
                out.append(f"  + {change.name} {change.new}{_sets(change)}")
            for change in plat.removed:
                out.append(f"  - {change.name} {change.old}{_sets(change)}")
            for set_name, size in sorted(plat.sizes.items()):
                if size.installed_new == size.installed_old and size.download_new == size.download_old:
                    continue
                unknown = f", {size.unknown} without Installed-Size" if size.unknown else ""
                if size.uncertain:
                    unknown += f", {size.uncertain} of them moved"
                kib = size.installed_change
                installed = f"{_signed(kib)} KiB" if kib is not None else "? KiB"
                out.append(f"  {set_name}: installed {installed} ({size.installed_old} → "
                           f"{size.installed_new} KiB{unknown}), download "
                           f"{_signed(size.download_new - size.download_old)} bytes")
        if not self.changed:
            out.append("xarch.lock: no package changed")
        return out


def _signed(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def _sets(change: Change) -> str:
    return f" [{', '.join(change.sets)}]" if change.sets != ["image"] else ""


def compare(old: Lock, new: Lock, sizes: Mapping[tuple[str, str, str], int] | None = None,
            snapshot: tuple[str | None, str | None] | None = None) -> ChangeReport:
    """What changed from OLD to NEW, per platform key; SIZES adds Installed-Size (KiB) of
    entries that do not record it, keyed by (name, version, architecture)."""
    known = dict(sizes or {})
    platforms: dict[str, PlatformChanges] = {}
    merged: dict[tuple[str, str, str, str | None, str | None], Change] = {}
    set_names = sorted(set(old.packages) | set(new.packages))
    for set_name in set_names:
        before_per = old.packages.get(set_name, {})
        after_per = new.packages.get(set_name, {})
        for key in sorted(set(before_per) | set(after_per)):
            plat = platforms.setdefault(key, PlatformChanges())
            before = {(p.name, p.architecture): p for p in before_per.get(key, [])}
            after = {(p.name, p.architecture): p for p in after_per.get(key, [])}
            for ident in sorted(set(before) | set(after)):
                was, now = before.get(ident), after.get(ident)
                old_version = was.version if was else None
                new_version = now.version if now else None
                if old_version == new_version:
                    continue
                mkey = (key, ident[0], ident[1], old_version, new_version)
                if mkey in merged:
                    merged[mkey].sets.append(set_name)
                    continue
                change = Change(ident[0], ident[1], old_version, new_version, [set_name])
                merged[mkey] = change
                if was is None:
                    plat.added.append(change)
                elif now is None:
                    plat.removed.append(change)
                elif version_compare(new_version or "", old_version or "") > 0:
                    plat.upgraded.append(change)
                else:
                    plat.downgraded.append(change)
            plat.sizes[set_name] = _set_size(before_per.get(key, []), after_per.get(key, []), known)
    releases = {suite: (old.releases.get(suite, {}).get("date"), new.releases.get(suite, {}).get("date"))
                for suite in set(old.releases) | set(new.releases)}
    releases = {suite: dates for suite, dates in releases.items() if dates[0] != dates[1]}
    for plat in platforms.values():
        for changes in (plat.added, plat.removed, plat.upgraded, plat.downgraded):
            changes.sort(key=lambda c: (c.name, c.architecture))
    return ChangeReport(platforms, releases, snapshot)


def _set_size(before: list[LockedPackage], after: list[LockedPackage],
              known: Mapping[tuple[str, str, str], int]) -> SetSize:
    def kib(pkg: LockedPackage) -> int | None:
        if pkg.installed_size is not None:
            return pkg.installed_size
        return known.get((pkg.name, pkg.version, pkg.architecture))

    def ident(pkg: LockedPackage) -> tuple[str, str, str]:
        return pkg.name, pkg.architecture, pkg.version

    unknown_before = {ident(p) for p in before if kib(p) is None}
    unknown_after = {ident(p) for p in after if kib(p) is None}
    unknown = sum(1 for p in [*before, *after] if kib(p) is None)
    return SetSize(sum(kib(p) or 0 for p in before), sum(kib(p) or 0 for p in after),
                   sum(p.size for p in before), sum(p.size for p in after), unknown,
                   len(unknown_before ^ unknown_after))
