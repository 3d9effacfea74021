"""Dependency resolution for one architecture, deterministic and without backtracking.

The same index and request always give the same set: requested packages are chosen
first (so they steer virtual packages and alternatives), then dependencies are followed
breadth-first in field order; for each dependency the first satisfiable alternative
wins, a real package beats a virtual one, and the highest version wins (among virtual
providers: the highest provided version, then the first name).
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
    if constraint is None:
        return True
    if version is None:  # an unversioned Provides never meets a versioned dependency
        return False
    op, wanted = constraint
    return _OPS[op](version_compare(version, wanted))


def relations(candidate: Candidate, field_name: str) -> list[list[Relation]]:
    text = candidate.get(field_name)
    return list(PkgRelation.parse_relations(text)) if text else []


def describe(rel: Relation) -> str:
    text = rel["name"] + (f":{rel['archqual']}" if rel.get("archqual") else "")
    if rel.get("version"):
        text += f" ({rel['version'][0]} {rel['version'][1]})"
    return text


@dataclass
class Universe:
    """Every candidate usable on one architecture (its own and `all`)."""

    arch: str
    by_name: dict[str, list[Candidate]] = field(default_factory=dict)
    _providers: dict[str, list[tuple[Candidate, str | None]]] | None = None

    @classmethod
    def build(cls, arch: str, candidates: Iterable[Candidate]) -> Universe:
        universe = cls(arch)
        for cand in candidates:
            if cand.architecture in (arch, "all"):
                universe.by_name.setdefault(cand.name, []).append(cand)
        def newest_first(a: Candidate, b: Candidate) -> int:
            by_version = version_compare(b.version, a.version)
            # Same version: the image's own architecture before "all"; then (the sort is
            # stable) the first suite listed in the recipe.
            return by_version or (a.architecture == "all") - (b.architecture == "all")

        order = cmp_to_key(newest_first)
        for name, cands in universe.by_name.items():
            cands.sort(key=order)
            unique: dict[str, Candidate] = {}
            for cand in cands:
                unique.setdefault(cand.version, cand)
            universe.by_name[name] = list(unique.values())
        return universe

    def providers(self, virtual: str) -> list[tuple[Candidate, str | None]]:
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


@dataclass
class Resolution:
    arch: str
    packages: dict[str, Candidate]  # name -> chosen
    needed_by: dict[str, str]  # name -> who pulled it in ("requested" for top level)


class Resolver:
    def __init__(self, universe: Universe, recommends: bool = False, essential: bool = False) -> None:
        self.universe = universe
        self.recommends = recommends
        self.essential = essential
        self.chosen: dict[str, Candidate] = {}
        self.needed_by: dict[str, str] = {}
        self.queue: deque[Candidate] = deque()

    def resolve(self, requested: list[str]) -> Resolution:
        for spec in self._requested(requested):
            self._choose_requested(spec)
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
            specs += sorted(name for name, cands in self.universe.by_name.items()
                            if cands[0].get("Essential") == "yes" and name not in specs)
        return specs

    def _choose_requested(self, spec: str) -> None:
        name, _, version = spec.partition("=")
        cands = self.universe.by_name.get(name, [])
        if version:
            cands = [c for c in cands if c.version == version]
        if not cands:
            if not version and self.universe.providers(name):
                providers = sorted({c.name for c, _ in self.universe.providers(name)})
                raise ResolveError(f"{name} ({self.universe.arch}) is a virtual package; "
                                   f"list one of its providers instead: {', '.join(providers)}")
            known = ", ".join(c.version for c in self.universe.by_name.get(name, [])) or "none"
            wanted = f"{name} {version}" if version else name
            raise ResolveError(f"package {wanted} is not available for {self.universe.arch} "
                               f"(requested; versions available: {known})")
        if name in self.chosen:
            return
        self._add(cands[0], "requested")

    def _add(self, cand: Candidate, why: str) -> None:
        self.chosen[cand.name] = cand
        self.needed_by[cand.name] = why
        self.queue.append(cand)

    def _satisfy(self, group: list[Relation], pkg: Candidate, optional: bool) -> None:
        usable = [rel for rel in group if self._arch_ok(rel)]
        if any(self._already_met(rel) for rel in usable):
            return
        who = f"{pkg.name} {pkg.version}"
        for rel in usable:
            pick = self._candidate_for(rel)
            if pick is not None:
                self._add(pick, who)
                return
        if optional:
            return
        raise ResolveError(self._explain(group, who))

    def _arch_ok(self, rel: Relation) -> bool:
        """Binary dependency lines may carry [arch] lists only in exotic cases; honour them."""
        arches = rel.get("arch")
        if not arches:
            return True
        enabled = [a.arch for a in arches if a.enabled]
        disabled = [a.arch for a in arches if not a.enabled]
        return self.universe.arch in enabled if enabled else self.universe.arch not in disabled

    def _qualifier_ok(self, rel: Relation, cand: Candidate) -> bool:
        """Multi-Arch in a single-architecture image: `:any` needs Multi-Arch allowed (or
        foreign); `:native`/no qualifier need the image's arch or all; `:<arch>` that arch."""
        qual = rel.get("archqual")
        if qual in (None, "native"):
            return True
        if qual == "any":
            return cand.get("Multi-Arch") in ("allowed", "foreign")
        return cand.architecture in (qual, "all")

    def _already_met(self, rel: Relation) -> bool:
        real = self.chosen.get(rel["name"])
        if real is not None and satisfies(real.version, rel.get("version")) and self._qualifier_ok(rel, real):
            return True
        for cand, provided in self.universe.providers(rel["name"]):
            if self.chosen.get(cand.name) is cand and satisfies(provided, rel.get("version")):
                if rel.get("archqual") != "any" or cand.get("Multi-Arch") in ("allowed", "foreign"):
                    return True
        return False

    def _candidate_for(self, rel: Relation) -> Candidate | None:
        constraint = rel.get("version")
        if rel["name"] not in self.chosen:  # a chosen real package that failed cannot be swapped
            for cand in self.universe.by_name.get(rel["name"], []):
                if satisfies(cand.version, constraint) and self._qualifier_ok(rel, cand):
                    return cand
        providers = [
            (cand, provided) for cand, provided in self.universe.providers(rel["name"])
            if satisfies(provided, constraint) and cand.name not in self.chosen
            and self.universe.by_name[cand.name][0] is cand  # only the version we would pick
            and (rel.get("archqual") != "any" or cand.get("Multi-Arch") in ("allowed", "foreign"))
        ]
        if not providers:
            return None

        def best_first(a: tuple[Candidate, str | None], b: tuple[Candidate, str | None]) -> int:
            """Highest provided version (unversioned last), then name."""
            if a[1] != b[1]:
                if a[1] is None or b[1] is None:
                    return 1 if a[1] is None else -1
                by_version = version_compare(b[1], a[1])
                if by_version:
                    return by_version
            return (a[0].name > b[0].name) - (a[0].name < b[0].name)

        providers.sort(key=cmp_to_key(best_first))
        return providers[0][0]

    def _explain(self, group: list[Relation], who: str) -> str:
        wanted = " | ".join(describe(rel) for rel in group)
        reasons = []
        for rel in group:
            name = rel["name"]
            if name in self.chosen:
                reasons.append(f"{name} {self.chosen[name].version} is already selected "
                               f"(needed by {self.needed_by[name]})")
            elif self.universe.by_name.get(name):
                versions = ", ".join(c.version for c in self.universe.by_name[name])
                reasons.append(f"{name} has only {versions}")
            elif self.universe.providers(name):
                reasons.append(f"no provider of {name} meets the constraint")
            else:
                reasons.append(f"no package {name} for {self.universe.arch}")
        return f"cannot satisfy {wanted}, needed by {who} ({self.universe.arch}): {'; '.join(reasons)}"

    def _check_conflicts(self) -> None:
        for name, pkg in self.chosen.items():
            for field_name in ("Conflicts", "Breaks"):
                for group in relations(pkg, field_name):
                    for rel in group:
                        other = self.chosen.get(rel["name"])
                        clash = other is not None and other is not pkg
                        if other is not None and clash and satisfies(other.version, rel.get("version")):
                            raise ResolveError(
                                f"{name} {pkg.version} {field_name.lower()} with {other.name} "
                                f"{other.version} (needed by {self.needed_by[other.name]}) "
                                f"on {self.universe.arch}")
                        for cand, provided in self.universe.providers(rel["name"]):
                            if (self.chosen.get(cand.name) is cand and cand is not pkg
                                    and satisfies(provided, rel.get("version"))):
                                raise ResolveError(
                                    f"{name} {pkg.version} {field_name.lower()} with {rel['name']}, "
                                    f"provided by {cand.name} (needed by {self.needed_by[cand.name]}) "
                                    f"on {self.universe.arch}")


def resolve(universe: Universe, requested: list[str], recommends: bool = False,
            essential: bool = False) -> Resolution:
    return Resolver(universe, recommends, essential).resolve(requested)
