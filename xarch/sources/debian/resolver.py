"""Dependency resolution for one architecture or a Debian multiarch set, deterministic and
without backtracking.

The same index and request always give the same set: requested packages are chosen
first (so they steer virtual packages and alternatives), then dependencies are followed
breadth-first in field order; for each dependency the first satisfiable alternative
wins, a real package beats a virtual one, and the highest version wins (among virtual
providers: the highest provided version, then the first name).

Multiarch (https://wiki.ubuntu.com/MultiarchSpec, dpkg's deparchsatisfied): the universe
has one *native* architecture (the build machine's in a cross root) and may hold foreign
ones. A package is installed for its architecture, `all` counting as native. An
unqualified dependency needs the dependent's architecture unless the target is
`Multi-Arch: foreign`; `:any` takes any architecture of a `Multi-Arch: allowed` (or
foreign) package; `:native` the native one; `:ARCH` that one. Two architectures of one
name are co-installable only when both are `Multi-Arch: same` at the same version. A
chosen package is named `name` when native and `name:arch` otherwise, as dpkg prints it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

from debian.deb822 import PkgRelation
from debian.debian_support import version_compare

from xarch.sources.debian.errors import ResolveError
from xarch.sources.debian.packages import Candidate

Relation = Any  # one alternative as python-debian parses it: name, archqual, version, ...

_OPS = {
    "<<": lambda c: c < 0, "<=": lambda c: c <= 0, "=": lambda c: c == 0,
    ">=": lambda c: c >= 0, ">>": lambda c: c > 0,
    "<": lambda c: c <= 0, ">": lambda c: c >= 0,  # obsolete spellings of <= and >=
}


def satisfies(version: str | None, constraint: tuple[str, str] | None) -> bool:
    """Whether VERSION meets CONSTRAINT, (operator, version) as python-debian parses a relation
    (Debian Policy §7.1; dpkg's version order, §5.6.12). CONSTRAINT None is always met; VERSION
    None (an unversioned Provides) meets no other. ValueError for a malformed version."""
    if constraint is None:
        return True
    if version is None:  # an unversioned Provides never meets a versioned dependency
        return False
    op, wanted = constraint
    return _OPS[op](version_compare(version, wanted))


def relations(candidate: Candidate, field_name: str) -> list[list[Relation]]:
    """CANDIDATE's relationship field FIELD_NAME ("Depends", "Provides", …; Debian Policy §7.1)
    as python-debian parses it: AND-ed groups, each a list of OR-ed alternatives (dicts with
    name, archqual, version, arch); [] when the field is absent."""
    text = candidate.get(field_name)
    return list(PkgRelation.parse_relations(text)) if text else []


def describe(rel: Relation) -> str:
    """One alternative as control files spell it, `name[:archqual] (op version)`, for messages."""
    text = rel["name"] + (f":{rel['archqual']}" if rel.get("archqual") else "")
    if rel.get("version"):
        text += f" ({rel['version'][0]} {rel['version'][1]})"
    return text


def multi_arch(cand: Candidate) -> str:
    """The Multi-Arch field: "same", "foreign", "allowed" or "no"."""
    return cand.get("Multi-Arch") or "no"


@dataclass
class Universe:
    """Every candidate usable on the native architecture ARCH (its own and `all`) and on
    the FOREIGN architectures (a cross root's target), each sorted newest first."""

    arch: str
    by_name: dict[str, list[Candidate]] = field(default_factory=dict)
    foreign: tuple[str, ...] = ()
    _providers: dict[str, list[tuple[Candidate, str | None]]] | None = None

    @classmethod
    def build(cls, arch: str, candidates: Iterable[Candidate], foreign: Iterable[str] = ()) -> Universe:
        """The universe of CANDIDATES for native ARCH and FOREIGN architectures: other
        architectures dropped; each name's versions newest first (dpkg's order; at one version
        a real architecture before `all`, then suite order), one per (version, architecture)."""
        universe = cls(arch, foreign=tuple(a for a in foreign if a != arch))
        usable = {arch, "all", *universe.foreign}
        for cand in candidates:
            if cand.architecture in usable:
                universe.by_name.setdefault(cand.name, []).append(cand)

        def newest_first(a: Candidate, b: Candidate) -> int:
            by_version = version_compare(b.version, a.version)
            # Same version: a real architecture before "all"; then (the sort is stable)
            # the first suite listed in the recipe.
            return by_version or (a.architecture == "all") - (b.architecture == "all")

        order = cmp_to_key(newest_first)
        for name, cands in universe.by_name.items():
            cands.sort(key=order)
            unique: dict[tuple[str, str], Candidate] = {}
            for cand in cands:  # `all` is in every architecture's index: keep one
                unique.setdefault((cand.version, universe.arch_of(cand)), cand)
            universe.by_name[name] = list(unique.values())
        return universe

    def arch_of(self, cand: Candidate) -> str:
        """The architecture CAND is installed for (dpkg treats `all` as native)."""
        return self.arch if cand.architecture == "all" else cand.architecture

    def key(self, cand: Candidate) -> str:
        """`name` when native, `name:arch` otherwise."""
        arch = self.arch_of(cand)
        return cand.name if arch == self.arch else f"{cand.name}:{arch}"

    def providers(self, virtual: str) -> list[tuple[Candidate, str | None]]:
        """(candidate, provided version or None) of every candidate whose Provides names
        VIRTUAL (Debian Policy §7.5), in name order; the index is built on the first call."""
        if self._providers is None:
            index: dict[str, list[tuple[Candidate, str | None]]] = {}
            for name in sorted(self.by_name):
                for cand in self.by_name[name]:
                    for group in relations(cand, "Provides"):
                        for rel in group:
                            version = rel["version"][1] if rel.get("version") else None
                            index.setdefault(rel["name"], []).append((cand, version))
            self._providers = index
        return self._providers.get(virtual, [])

    def best(self, name: str, arch: str) -> Candidate | None:
        """The newest NAME installable for ARCH, or None."""
        return next((c for c in self.by_name.get(name, []) if self.arch_of(c) == arch), None)


@dataclass
class Resolution:
    """A resolved set for native ARCH: PACKAGES {key: Candidate}, sorted by key (`name`, or
    `name:arch` when foreign), and NEEDED_BY {key: who pulled it in, "requested" at the top}."""

    arch: str
    packages: dict[str, Candidate]  # key (name, or name:arch when foreign) -> chosen
    needed_by: dict[str, str]  # key -> who pulled it in ("requested" for top level)


class Resolver:
    """One resolution over UNIVERSE by the module's rules: RECOMMENDS follows Recommends too,
    ESSENTIAL adds every native `Essential: yes` package. Call resolve once: it keeps its choices."""

    def __init__(self, universe: Universe, recommends: bool = False, essential: bool = False) -> None:
        self.universe = universe
        self.recommends = recommends
        self.essential = essential
        self.chosen: dict[str, Candidate] = {}
        self.needed_by: dict[str, str] = {}
        self.queue: deque[Candidate] = deque()

    def resolve(self, requested: list[str], target: list[str] | None = None,
                target_arch: str | None = None) -> Resolution:
        """REQUESTED: `name[:arch|:native][=version]`, native unless qualified. TARGET (a
        cross root's stage packages): for TARGET_ARCH, except an unqualified tool (`all`,
        `Multi-Arch: foreign` or `allowed`), which steps run, so the native one.

        Raises ResolveError (exit 2) for a request that is not available (or names a virtual
        package), a dependency no candidate meets, a Conflicts or Breaks between chosen
        packages, or two architectures of one name that are not Multi-Arch: same at one version.
        """
        for spec in self._requested(requested):
            self._choose_requested(spec, self.universe.arch, False)
        for spec in target or []:
            assert target_arch is not None
            self._choose_requested(spec, target_arch, True)
        while self.queue:
            pkg = self.queue.popleft()
            fields = ["Pre-Depends", "Depends"] + (["Recommends"] if self.recommends else [])
            for field_name in fields:
                for group in relations(pkg, field_name):
                    self._satisfy(group, pkg, optional=field_name == "Recommends")
        self._check_conflicts()
        return Resolution(self.universe.arch, dict(sorted(self.chosen.items())), dict(self.needed_by))

    def _requested(self, requested: list[str]) -> list[str]:
        specs = list(requested)
        if self.essential:
            native = [self.universe.best(name, self.universe.arch) for name in self.universe.by_name]
            specs += sorted(c.name for c in native
                            if c is not None and c.get("Essential") == "yes" and c.name not in specs)
        return specs

    def _choose_requested(self, spec: str, default_arch: str, foreign_goes_native: bool) -> None:
        name_qual, _, version = spec.partition("=")
        name, _, qual = name_qual.partition(":")
        arch = self.universe.arch if qual == "native" else (qual or default_arch)
        if foreign_goes_native and not qual:
            newest = self.universe.best(name, arch)
            native = self.universe.best(name, self.universe.arch)
            # An `all` package is native; a tool (Multi-Arch: foreign or allowed) is run, so
            # native too; a library (same) or a package that is not multiarch is the target's.
            tool = newest is not None and multi_arch(newest) in ("foreign", "allowed")
            if native is not None and (newest is None and native.architecture == "all" or tool):
                arch = self.universe.arch
        cands = [c for c in self.universe.by_name.get(name, []) if self.universe.arch_of(c) == arch]
        if version:
            cands = [c for c in cands if c.version == version]
        if not cands:
            if not version and self.universe.providers(name):
                providers = sorted({c.name for c, _ in self.universe.providers(name)})
                raise ResolveError(f"{name} ({arch}) is a virtual package; "
                                   f"list one of its providers instead: {', '.join(providers)}")
            known = ", ".join(c.version for c in self.universe.by_name.get(name, [])
                              if self.universe.arch_of(c) == arch) or "none"
            wanted = f"{name} {version}" if version else name
            raise ResolveError(f"package {wanted} is not available for {arch} "
                               f"(requested; versions available: {known})")
        if self.universe.key(cands[0]) in self.chosen:
            return
        self._add(cands[0], "requested")

    def _add(self, cand: Candidate, why: str) -> None:
        key = self.universe.key(cand)
        self.chosen[key] = cand
        self.needed_by[key] = why
        self.queue.append(cand)

    def _satisfy(self, group: list[Relation], pkg: Candidate, optional: bool) -> None:
        arch = self.universe.arch_of(pkg)
        usable = [rel for rel in group if self._arch_ok(rel, arch)]
        if any(self._already_met(rel, arch) for rel in usable):
            return
        who = f"{self.universe.key(pkg)} {pkg.version}"
        for rel in usable:
            pick = self._candidate_for(rel, arch)
            if pick is not None:
                self._add(pick, who)
                return
        if optional:
            return
        raise ResolveError(self._explain(group, who, arch))

    def _arch_ok(self, rel: Relation, arch: str) -> bool:
        """Binary dependency lines may carry [arch] lists only in exotic cases; honour them."""
        arches = rel.get("arch")
        if not arches:
            return True
        enabled = [a.arch for a in arches if a.enabled]
        disabled = [a.arch for a in arches if not a.enabled]
        return arch in enabled if enabled else arch not in disabled

    def _qualifier_ok(self, rel: Relation, cand: Candidate, arch: str) -> bool:
        """Whether CAND meets REL (its name and qualifier) for a dependent installed for ARCH."""
        qual = rel.get("archqual")
        ma = multi_arch(cand)
        if qual == "any":
            return ma in ("allowed", "foreign")
        if ma == "foreign":
            return True
        wanted = self.universe.arch if qual == "native" else (qual or arch)
        return self.universe.arch_of(cand) == wanted

    def _provider_ok(self, rel: Relation, cand: Candidate, arch: str) -> bool:
        """A Provides of CAND stands for the virtual name on CAND's architecture (any, when foreign)."""
        ma = multi_arch(cand)
        if rel.get("archqual") == "any":
            return ma in ("allowed", "foreign")
        return ma == "foreign" or self.universe.arch_of(cand) == arch

    def _chosen_named(self, name: str) -> list[Candidate]:
        return [c for c in self.chosen.values() if c.name == name]

    def _already_met(self, rel: Relation, arch: str) -> bool:
        for real in self._chosen_named(rel["name"]):
            if satisfies(real.version, rel.get("version")) and self._qualifier_ok(rel, real, arch):
                return True
        for cand, provided in self.universe.providers(rel["name"]):
            if self.chosen.get(self.universe.key(cand)) is cand and satisfies(provided, rel.get("version")):
                if self._provider_ok(rel, cand, arch):
                    return True
        return False

    def _arch_preference(self, cand: Candidate, arch: str, qual: str | None) -> int:
        """The dependent's own architecture first, except where any architecture would do
        (`:any`, Multi-Arch: foreign): then native, a tool that runs (as apt prefers)."""
        own = self.universe.arch_of(cand)
        if qual == "any" or multi_arch(cand) == "foreign":
            return 0 if own == self.universe.arch else 1 if own == arch else 2
        return 0 if own == arch else 1 if own == self.universe.arch else 2

    def _candidate_for(self, rel: Relation, arch: str) -> Candidate | None:
        constraint = rel.get("version")
        chosen_names = {c.name for c in self.chosen.values()}
        qual = rel.get("archqual")
        # The sort is stable: newest first within one architecture preference.
        cands = sorted(self.universe.by_name.get(rel["name"], []),
                       key=lambda c: self._arch_preference(c, arch, qual))
        for cand in cands:
            # A chosen real package that failed cannot be swapped (another architecture may join it).
            if self.universe.key(cand) not in self.chosen and satisfies(cand.version, constraint) \
                    and self._qualifier_ok(rel, cand, arch):
                return cand
        providers = [
            (cand, provided) for cand, provided in self.universe.providers(rel["name"])
            if satisfies(provided, constraint) and cand.name not in chosen_names
            # only the version we would pick
            and self.universe.best(cand.name, self.universe.arch_of(cand)) is cand
            and self._provider_ok(rel, cand, arch)
        ]
        if not providers:
            return None

        def best_first(a: tuple[Candidate, str | None], b: tuple[Candidate, str | None]) -> int:
            """Highest provided version (unversioned last), then name, then architecture preference."""
            if a[1] != b[1]:
                if a[1] is None or b[1] is None:
                    return 1 if a[1] is None else -1
                by_version = version_compare(b[1], a[1])
                if by_version:
                    return by_version
            by_name = (a[0].name > b[0].name) - (a[0].name < b[0].name)
            prefer = self._arch_preference
            return by_name or prefer(a[0], arch, qual) - prefer(b[0], arch, qual)

        providers.sort(key=cmp_to_key(best_first))
        return providers[0][0]

    def _explain(self, group: list[Relation], who: str, arch: str) -> str:
        wanted = " | ".join(describe(rel) for rel in group)
        reasons = []
        for rel in group:
            name = rel["name"]
            chosen = self._chosen_named(name)
            if chosen:
                reasons += [f"{self.universe.key(c)} {c.version} is already selected "
                            f"(needed by {self.needed_by[self.universe.key(c)]})" for c in chosen]
            elif self.universe.by_name.get(name):
                cands = self.universe.by_name[name]
                versions = ", ".join(c.version for c in cands)
                if self.universe.foreign:
                    versions = ", ".join(f"{c.version} ({self.universe.arch_of(c)}, Multi-Arch: "
                                         f"{multi_arch(c)})" for c in cands)
                reasons.append(f"{name} has only {versions}")
            elif self.universe.providers(name):
                reasons.append(f"no provider of {name} meets the constraint")
            else:
                reasons.append(f"no package {name} for {arch}")
        return f"cannot satisfy {wanted}, needed by {who} ({arch}): {'; '.join(reasons)}"

    def _check_conflicts(self) -> None:
        self._check_coinstallable()
        for key, pkg in self.chosen.items():
            for field_name in ("Conflicts", "Breaks"):
                for group in relations(pkg, field_name):
                    for rel in group:
                        self._check_clash(key, pkg, field_name, rel)

    def _check_coinstallable(self) -> None:
        """dpkg installs one name for two architectures only as Multi-Arch: same, same version."""
        by_name: dict[str, list[str]] = {}
        for key, cand in self.chosen.items():
            by_name.setdefault(cand.name, []).append(key)
        for keys in by_name.values():
            if len(keys) < 2:
                continue
            cands = [self.chosen[k] for k in keys]
            if all(multi_arch(c) == "same" for c in cands) and len({c.version for c in cands}) == 1:
                continue
            described = " and ".join(f"{k} {self.chosen[k].version} (Multi-Arch: "
                                     f"{multi_arch(self.chosen[k])}, needed by {self.needed_by[k]})"
                                     for k in keys)
            raise ResolveError(f"{described} cannot be installed together: two architectures of one "
                               f"package need Multi-Arch: same and one version")

    def _check_clash(self, key: str, pkg: Candidate, field_name: str, rel: Relation) -> None:
        # An unqualified Conflicts/Breaks applies to every architecture of the name (dpkg),
        # never to the package's own name.
        for other in self._chosen_named(rel["name"]):
            if other.name != pkg.name and satisfies(other.version, rel.get("version")):
                raise ResolveError(
                    f"{key} {pkg.version} {field_name.lower()} with {self.universe.key(other)} "
                    f"{other.version} (needed by {self.needed_by[self.universe.key(other)]}) "
                    f"on {self.universe.arch}")
        for cand, provided in self.universe.providers(rel["name"]):
            cand_key = self.universe.key(cand)
            if (self.chosen.get(cand_key) is cand and cand.name != pkg.name
                    and satisfies(provided, rel.get("version"))):
                raise ResolveError(
                    f"{key} {pkg.version} {field_name.lower()} with {rel['name']}, "
                    f"provided by {cand_key} (needed by {self.needed_by[cand_key]}) "
                    f"on {self.universe.arch}")


def resolve(universe: Universe, requested: list[str], recommends: bool = False,
            essential: bool = False) -> Resolution:
    """REQUESTED (`name[:arch|:native][=version]`) and what it needs, in UNIVERSE (see Resolver).
    Raises ResolveError (exit 2) as Resolver.resolve."""
    return Resolver(universe, recommends, essential).resolve(requested)


def resolve_cross(universe: Universe, toolchain: list[str], target: list[str], target_arch: str,
                  recommends: bool = False) -> Resolution:
    """A cross root: TOOLCHAIN for the native (build) architecture, TARGET for TARGET_ARCH
    (a Multi-Arch: foreign one natively), dependencies followed across both. Raises
    ResolveError (exit 2) as Resolver.resolve."""
    return Resolver(universe, recommends).resolve(toolchain, target, target_arch)
