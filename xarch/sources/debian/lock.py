"""xarch.lock: every package of every platform pinned by version, path, size and sha256.

YAML with sorted keys and sorted entries, so the same resolution gives the same bytes.
The lock stores a digest of the inputs it was made from (source identity, selections,
platforms, cross roots) so `--locked` can say exactly what changed.

Packages are keyed by set (the image, each stage) and platform. A stage that may
cross-build also gets a root per build machine architecture: its key is
`BUILD->TARGET` (e.g. `amd64->arm64`) and it pins both architectures' packages, the
build architecture's cross toolchain (platforms/*.yaml `cross.root_packages`) and the stage's
packages for the target (see resolver.resolve_cross).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xarch.oci.atomic import atomic_file
from xarch.oci.store import Store
from xarch.platforms import Platform
from xarch.sources.debian.config import DebianSource, PackageSelection, inputs_digest
from xarch.sources.debian.errors import LockError

if TYPE_CHECKING:  # the resolving machinery (HTTP, python-debian) loads only to resolve
    from xarch.sources.debian.packages import Candidate
    from xarch.sources.debian.release import Release
    from xarch.sources.debian.resolver import Universe

LOCK_VERSION = 1
DEFAULT_SET = "image"
# The machines a cross root is locked for: those xarch is run on (CI runners and
# workstations). A cross root needs no host tool, so the lock is the same whichever host made it.
BUILD_PLATFORMS = ("amd64", "arm64")
# In a cross root these name the native compiler, which the cross toolchain stands in for
# (as crossbuild-essential-ARCH stands in for build-essential); they are not installed.
NATIVE_TOOLCHAIN = frozenset({"build-essential", "gcc", "g++", "cpp"})
Progress = Callable[[str], None]
# Top-level sections of xarch.lock that other sources own (xarch/sources/python/lock.py):
# read and written there, kept byte for byte here.
OTHER_SECTIONS = ("python", "python_stages")
# One archive, or several (e.g. the main archive and debian-security); suites are unique.
Sources = DebianSource | Sequence[DebianSource]
# (set name, platform key, universe, recommends) -> the universe to resolve that set in: how
# `xarch lock --update PKG` keeps the other pins (sources/debian/update.py).
Pinning = Callable[[str, str, "Universe", bool], "Universe"]


@dataclass(frozen=True)
class LockedPackage:
    """One pinned .deb, from its Packages stanza: NAME, VERSION, ARCHITECTURE (Debian's, or
    `all`), FILENAME below the archive root, SIZE in bytes, SHA256 (64 hex digits), the SUITE
    it comes from, INSTALLED_SIZE in KiB when known (Debian Policy §5.6.20)."""

    name: str
    version: str
    architecture: str
    filename: str  # below the archive root: pool/main/...
    size: int
    sha256: str
    suite: str
    # KiB, from the index's Installed-Size; None in locks written before it was recorded
    # (they still load, and keep their bytes: None is not written).
    installed_size: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"


def package_origin(pkg: LockedPackage) -> str:
    """How the files of PKG are labelled in a Tree: "package busybox 1:1.35.0-4 (arm64)"."""
    return f"package {pkg.label}"


@dataclass
class Lock:
    """xarch.lock in memory: INPUTS {part: sha256 digest of what the lock was made from},
    RELEASES {suite: Release.lock_record()}, PACKAGES {set: {platform key: [LockedPackage]}}
    (set "image" or a stage's name; key a platform name or cross_key(build, target))."""

    inputs: dict[str, str]  # part -> digest: "source", "selections", "platforms"
    releases: dict[str, dict[str, str]]  # suite -> date, valid_until, inrelease_sha256, signed_by
    packages: dict[str, dict[str, list[LockedPackage]]] = field(default_factory=dict)  # set -> platform

    def entries(self, platform: str, selection: str = DEFAULT_SET) -> list[LockedPackage]:
        """The packages pinned for set SELECTION on PLATFORM (a platform name); LockError
        (exit 2) when the lock has none."""
        try:
            return self.packages[selection][platform]
        except KeyError:
            raise LockError(f"xarch.lock has no packages for {selection!r} on {platform}; "
                            "run `xarch lock`") from None

    def cross_entries(self, target: str, build: str, selection: str) -> list[LockedPackage]:
        """The cross root of SELECTION for TARGET built on BUILD (platform names); LockError
        (exit 2) when the lock has none."""
        try:
            return self.packages[selection][cross_key(build, target)]
        except KeyError:
            raise LockError(f"xarch.lock has no cross root for {selection!r} on {target} built on {build} "
                            f"(stages.{selection}.cross must be true, and the archive must have the "
                            f"{target} cross toolchain for {build}); run `xarch lock`, or use strategy "
                            "emulate") from None

    def to_data(self) -> dict[str, Any]:
        """{version, inputs, releases, packages} as plain data, every key and entry sorted (packages
        by name, then architecture; installed_size left out when unknown): what dumps writes."""
        return {
            "version": LOCK_VERSION,
            "inputs": dict(sorted(self.inputs.items())),
            "releases": {suite: dict(sorted(rec.items())) for suite, rec in sorted(self.releases.items())},
            "packages": {
                name: {plat: [_entry_data(p) for p in sorted(pkgs, key=lambda p: (p.name, p.architecture))]
                       for plat, pkgs in sorted(per_platform.items())}
                for name, per_platform in sorted(self.packages.items())
            },
        }

    def dumps(self, kept: dict[str, Any] | None = None) -> str:
        """The lock as YAML text with KEPT (other sources' sections, OTHER_SECTIONS) beside it,
        keys sorted, so the same lock always gives the same bytes."""
        return yaml.safe_dump({**(kept or {}), **self.to_data()}, sort_keys=True, default_flow_style=False,
                              width=1000, allow_unicode=True)

    def dump(self, path: Path) -> None:
        """Write atomically: a reader sees the old lock or the new one, never half of one.
        The OTHER_SECTIONS of the lock at PATH are kept. Raises OSError when PATH cannot be written."""
        path = Path(path)
        kept = _other_sections(path)
        text = "# Generated by `xarch lock`. Do not edit.\n" + self.dumps(kept)
        with atomic_file(path) as handle:
            handle.write(text.encode("utf-8"))

    @classmethod
    def load(cls, path: Path, parsed: Path | None = None) -> Lock:
        """The lock at PATH (a regular file of at most MAX_LOCK_BYTES), checked against its
        schema. Raises LockError (exit 2, one line naming PATH) when it is missing, unreadable,
        not YAML, of another LOCK_VERSION, has no Debian part, or has a wrong field.
        PARSED: the cache's folder of parses (as for has_packages), where lock data that passed
        the check is noted (_checked_note), so that the next build does not check it again."""
        path = Path(path)
        try:
            raw = _parsed_lock(path)
        except FileNotFoundError:
            raise LockError(f"{path} does not exist; run `xarch lock`") from None
        except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError) as exc:
            detail = " ".join(str(exc).split())  # YAML errors span lines; the CLI shows one
            raise LockError(f"{path}: cannot read the lock: {detail}") from None
        if not isinstance(raw, dict):
            raise LockError(f"{path}: malformed lock (not a mapping); run `xarch lock` again")
        raw = {key: value for key, value in raw.items() if key not in OTHER_SECTIONS}
        if not raw:
            raise LockError(f"{path} has no Debian packages yet; run `xarch lock`")
        if raw.get("version") != LOCK_VERSION:
            raise LockError(f"{path}: lock version {raw.get('version')!r}, this xarch reads {LOCK_VERSION}")
        note = _checked_note(raw, parsed)
        if note is None or not note.is_file():
            try:
                _LockFile.model_validate(raw)
            except ValidationError as exc:
                problem = _schema_problem(raw, exc)
                raise LockError(f"{path}: malformed lock: {problem}; run `xarch lock` again") from None
            if note is not None:
                _write_note(note)
        # Strict (no value is converted): what passed the check is the data, as the file holds it.
        packages = {
            name: {plat: [LockedPackage(**entry) for entry in entries] for plat, entries in per.items()}
            for name, per in raw["packages"].items()
        }
        return cls(inputs=dict(raw["inputs"]), releases={k: dict(v) for k, v in raw["releases"].items()},
                   packages=packages)


def _other_sections(path: Path) -> dict[str, Any]:
    """The OTHER_SECTIONS of the lock at PATH as they are (none when it is absent or unreadable)."""
    try:
        raw = _parsed_lock(path)
    except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError):
        return {}
    return {key: raw[key] for key in OTHER_SECTIONS if isinstance(raw, dict) and key in raw}


def _checked_note(raw: Any, parsed: Path | None) -> Path | None:
    """Where the note that RAW (a lock's data, as parsed: from the file, or from the cache's
    parse of it) passed _LockFile's check with this xarch and interpreter is kept in PARSED; None
    without PARSED, or for data JSON cannot hold. Keyed by the data itself, so that what is
    noted is what is used. Building pydantic's validator costs a build ~25 ms; this, ~2 ms."""
    if parsed is None:
        return None
    import json

    from xarch.records import code_fingerprint, record_json

    if not _string_keys(raw):
        return None  # JSON writes `true:` and `"true":` alike: such data is checked at each load
    try:
        data = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None  # a date, a value JSON cannot hold: checked at each load
    material = {"format": "xarch-lock-checked/2", "data": hashlib.sha256(data.encode()).hexdigest(),
                "code": code_fingerprint()}
    return parsed / f"lock-checked-{hashlib.sha256(record_json(material)).hexdigest()}"


def _string_keys(value: Any) -> bool:
    """Whether every mapping in VALUE (nested lists and mappings) has only text keys."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _write_note(note: Path) -> None:
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(note, mode=0o600):
            pass
    except OSError:
        pass  # a cache that cannot be written: the lock is checked at each build, as before


def has_packages(path: Path, parsed: Path | None = None) -> bool:
    """Whether the lock at PATH has a Debian part (a lock may hold only another source's section).
    PARSED: a folder of the cache where the parsed lock is kept (_parsed_yaml); a build gives it,
    and its Lock.load of PATH then takes the same parse."""
    try:
        raw = _parsed_lock(path, parsed)
    except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError):
        return True  # Lock.load names the problem
    return not isinstance(raw, dict) or any(key not in OTHER_SECTIONS for key in raw)


class _LockedEntry(BaseModel):
    """The schema of one package of xarch.lock (what `Lock.dumps` writes), checked on load."""

    # defer_build: the validator is built at the first check, not at import (_checked_note)
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    name: str
    version: str
    architecture: str
    filename: str = Field(pattern=r"^[^/]")  # below the archive root
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    suite: str
    installed_size: int | None = Field(default=None, ge=0)


class _LockFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    version: int
    inputs: dict[str, str]
    releases: dict[str, dict[str, str]]
    packages: dict[str, dict[str, list[_LockedEntry]]]


def _schema_problem(raw: dict[str, Any], error: ValidationError) -> str:
    """The first problem as `packages.image.amd64[3] (libc6).size: <what is wrong>`."""
    first = error.errors()[0]
    loc = first["loc"]
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    # Name the package too: an index alone is hard to find in a lock of hundreds.
    if len(loc) >= 4 and loc[0] == "packages" and isinstance(loc[3], int):
        try:
            entry = raw["packages"][loc[1]][loc[2]][loc[3]]
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                where = where.replace(f"[{loc[3]}]", f"[{loc[3]}] ({entry['name']})", 1)
        except (KeyError, IndexError, TypeError):
            pass
    message = "unknown field" if first["type"] == "extra_forbidden" else str(first["msg"])
    return f"{where}: {message}" if where else message


def cross_key(build: str, target: str) -> str:
    """`amd64->arm64`: the lock's key of a cross root (platform names)."""
    return f"{build}->{target}"


def _entry_data(pkg: LockedPackage) -> dict[str, Any]:
    return {key: value for key, value in asdict(pkg).items() if value is not None}


def _selections(selection: PackageSelection | Mapping[str, PackageSelection]) -> dict[str, PackageSelection]:
    if isinstance(selection, PackageSelection):
        return {DEFAULT_SET: selection}
    return dict(selection)


def as_list(source: Sources) -> list[DebianSource]:
    """SOURCE (one archive or several) as a list. Raises LockError (exit 2) when it names
    no archive or lists a suite twice."""
    sources = [source] if isinstance(source, DebianSource) else list(source)
    if not sources:
        raise LockError("sources.debian names no archive")
    seen: dict[str, str] = {}
    for item in sources:
        for suite in item.suites:
            if suite in seen:
                raise LockError(f"sources.debian: suite {suite} is listed twice "
                                f"({seen[suite]} and {item.mirror or 'the host mirror'})")
            seen[suite] = item.mirror or "the host mirror"
    return sources


def mirror_of(source: Sources) -> Callable[[LockedPackage], str]:
    """Archive root to fetch a locked package from: the source that has its suite. Raises
    LockError (exit 2) as as_list does; the function returned raises it for a suite SOURCE
    no longer lists."""
    by_suite = {suite: item.base_url() for item in as_list(source) for suite in item.suites}

    def base_url(pkg: LockedPackage) -> str:
        try:
            return by_suite[pkg.suite]
        except KeyError:
            raise LockError(f"xarch.lock pins {pkg.label} from suite {pkg.suite}, which sources.debian "
                            "no longer lists; run `xarch lock`") from None

    return base_url


def _source_identity(source: Sources) -> object:
    sources = as_list(source)
    return sources[0].identity() if len(sources) == 1 else [item.identity() for item in sources]


def input_digests(source: Sources, selection: PackageSelection | Mapping[str, PackageSelection],
                  platforms: list[Platform], cross: Mapping[str, PackageSelection] | None = None
                  ) -> dict[str, str]:
    """{part: sha256 digest} of what a lock is made from: "source" (the archives' identity,
    not the mirror), "selections", "platforms" and, only with CROSS, "cross" (those stages'
    selections, BUILD_PLATFORMS, each platform's cross.root_packages). LockError as as_list."""
    selections = _selections(selection)
    digests = {
        "source": inputs_digest(_source_identity(source)),
        "selections": inputs_digest({k: v.identity() for k, v in sorted(selections.items())}),
        "platforms": inputs_digest(sorted(p.name for p in platforms)),
    }
    if cross:  # only then: a lock without cross stages keeps its bytes
        digests["cross"] = inputs_digest({
            "sets": {k: v.identity() for k, v in sorted(cross.items())},
            "build": list(BUILD_PLATFORMS),
            "toolchains": {p.name: list(p.cross_root_packages)
                           for p in sorted(platforms, key=lambda p: p.name)},
        })
    return digests


def cross_request(target: Platform, selection: PackageSelection) -> tuple[list[str], list[str]]:
    """(build-architecture packages, target packages) of a cross root for TARGET."""
    wanted = [spec for spec in selection.for_platform(target.name)
              if spec.partition("=")[0] not in NATIVE_TOOLCHAIN]
    return list(target.cross_root_packages), wanted


def resolve_lock(source: Sources, selection: PackageSelection | Mapping[str, PackageSelection],
                 platforms: list[Platform], progress: Progress | None = None,
                 store: Store | None = None, now: datetime | None = None,
                 cross: Mapping[str, PackageSelection] | None = None,
                 pinning: Pinning | None = None) -> Lock:
    """Fetch and verify the indexes, resolve every selection for every platform.

    SELECTION is one PackageSelection (the image's, stored as "image") or a mapping of
    names (the image, each stage) to selections. CROSS maps the names of stages that may
    cross-build to their target packages: each gets a cross root per build platform
    (BUILD_PLATFORMS) and target platform, under cross_key(build, target); a pair whose
    build architecture has no such cross toolchain in the archive is left out (and said).
    STORE, when given, caches the verified Packages indexes so relocking the same archive
    state needs no index download. PINNING, when given, narrows the universe of each set and
    platform (keeping pins). Raises LockError and ResolveError (exit 2); DownloadError,
    SignatureError, ReleaseExpired and IndexMismatch (exit 4).
    """
    from xarch import platforms as platform_data
    from xarch.sources.debian.release import fetch_release
    from xarch.sources.debian.resolver import Universe, resolve, resolve_cross

    say = progress or (lambda _message: None)
    selections = _selections(selection)
    releases: list[tuple[DebianSource, Release]] = []
    for item in as_list(source):
        for suite in item.suites:
            say(f"verifying {item.base_url()}/dists/{suite}/InRelease")
            releases.append((item, fetch_release(item, suite, now=now)))
    lock = Lock(input_digests(source, selections, platforms, cross),
                {r.suite: r.lock_record() for _, r in releases})
    indexes: dict[str, list[Candidate]] = {}

    def candidates(arch: str) -> list[Candidate]:
        if arch not in indexes:
            indexes[arch] = _candidates(releases, arch, store, say)
        return indexes[arch]

    for plat in platforms:
        universe = Universe.build(plat.debian_arch, candidates(plat.debian_arch))
        for set_name, sel in sorted(selections.items()):
            here = pinning(set_name, plat.name, universe, sel.recommends) if pinning else universe
            resolution = resolve(here, sel.for_platform(plat.name), sel.recommends, sel.essential)
            lock.packages.setdefault(set_name, {})[plat.name] = [
                _locked(c) for c in resolution.packages.values()
            ]
            say(f"{set_name} on {plat.name}: {len(resolution.packages)} packages")
    for plat in platforms:
        for build in (platform_data.get(name) for name in BUILD_PLATFORMS):
            if build == plat or not cross:
                continue
            lacking = [r.url for _, r in releases
                       if r.architectures and build.debian_arch not in r.architectures]
            if lacking:
                say(f"no cross root for {plat.name} built on {build.name}: {lacking[0]} has no "
                    f"{build.debian_arch} packages")
                continue
            universe = Universe.build(build.debian_arch, candidates(build.debian_arch)
                                      + candidates(plat.debian_arch), foreign=[plat.debian_arch])
            compiler = plat.cross_root_packages[0] if plat.cross_root_packages else f"gcc-{plat.triplet}"
            if universe.best(compiler, build.debian_arch) is None:
                say(f"no cross root for {plat.name} built on {build.name}: the archive has no "
                    f"{compiler} for {build.debian_arch}")
                continue
            for set_name, sel in sorted(cross.items()):
                toolchain, target = cross_request(plat, sel)
                key = cross_key(build.name, plat.name)
                here = pinning(set_name, key, universe, sel.recommends) if pinning else universe
                resolution = resolve_cross(here, toolchain, target, plat.debian_arch, sel.recommends)
                lock.packages.setdefault(set_name, {})[key] = [
                    _locked(c) for c in resolution.packages.values()
                ]
                say(f"{set_name} on {plat.name} built on {build.name}: {len(resolution.packages)} packages")
    return lock


def _candidates(releases: list[tuple[DebianSource, Release]], arch: str, store: Store | None,
                say: Progress) -> list[Candidate]:
    from xarch.sources.debian.packages import fetch_index, parse_index

    candidates: list[Candidate] = []
    for source, release in releases:
        if release.architectures and arch not in release.architectures:
            raise LockError(f"{release.url}: the archive has no {arch} packages "
                            f"(it has {', '.join(release.architectures)})")
        for component in source.components:
            say(f"reading {release.suite}/{component}/binary-{arch}/Packages")
            candidates += parse_index(fetch_index(release, component, arch, store), release.suite, component)
    return candidates


def _locked(cand: Candidate) -> LockedPackage:
    return LockedPackage(cand.name, cand.version, cand.architecture, cand.filename, cand.size, cand.sha256,
                         cand.suite, cand.installed_size)


def lock_matches(lock: Lock, source: Sources,
                 selection: PackageSelection | Mapping[str, PackageSelection],
                 platforms: list[Platform], cross: Mapping[str, PackageSelection] | None = None) -> list[str]:
    """What differs between LOCK and the recipe's inputs, one sentence each (empty when the
    lock is current). LockError (exit 2) as as_list."""
    wanted = input_digests(source, selection, platforms, cross)
    explain = {
        "source": "sources.debian (suites, components, snapshot or fingerprints) changed",
        "selections": "the package lists (packages, per-platform add/exclude, recommends, essential) changed",
        "platforms": "the platforms changed",
        "cross": ("the cross-building stages or their toolchains (platforms/*.yaml cross.root_packages) "
                  "changed"),
    }
    parts = sorted(set(wanted) | ({"cross"} & set(lock.inputs)))
    differences = [explain[part] for part in parts if lock.inputs.get(part) != wanted.get(part)]
    for set_name in _selections(selection):
        for plat in platforms:
            if plat.name not in lock.packages.get(set_name, {}):
                differences.append(f"the lock has no packages for {set_name!r} on {plat.name}")
    return differences


# A lock of every package of a large image is a few MB; past this it is not a lock.
MAX_LOCK_BYTES = 64 << 20


# path → (text, parsed YAML): a build asks has_packages, then Lock.load, of one file, and parsing a
# lock of a few hundred packages is what costs (reading it again, to compare, does not).
_PARSED: dict[str, tuple[str, Any]] = {}


def _parsed_lock(path: Path, parsed: Path | None = None) -> Any:
    """The lock at PATH parsed as YAML (the C loader when PyYAML has it: a lock of a few hundred
    packages loads 10× faster). The file is read every time; the same text is parsed once per
    process (and across processes, given PARSED: _parsed_yaml). Callers must not change what it
    returns. Raises as _read_lock and yaml.load."""
    text = _read_lock(path)
    cached = _PARSED.get(str(path))
    if cached is not None and cached[0] == text:
        return cached[1]
    raw = _parsed_yaml(text, parsed)
    _PARSED[str(path)] = (text, raw)
    return raw


def _parsed_yaml(text: str, parsed: Path | None) -> Any:
    """TEXT parsed as YAML; with PARSED (a folder of the cache), kept there as JSON under TEXT's
    sha256 (`<hex>.json`): PyYAML's constructor is Python even over libyaml (~40 ms for a lock of
    300 packages here), json's is C (~1 ms). Kept only when the JSON reads back equal to what
    PyYAML gave (no dates, no keys that are not strings). Raises as yaml.load."""
    import json

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if parsed is None:
        return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    entry = parsed / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()}.json"
    from xarch.smallfile import SmallFileError, read_small

    try:
        return json.loads(read_small(entry, MAX_LOCK_BYTES * 2))  # a FIFO there is not waited on
    except (OSError, ValueError, RecursionError, SmallFileError):
        pass  # absent or damaged: parsed again, and written again
    raw = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    try:
        data = json.dumps(raw, ensure_ascii=False, allow_nan=False).encode("utf-8")
        if json.loads(data) == raw:
            with atomic_file(entry) as handle:
                handle.write(data)
    except (TypeError, ValueError, RecursionError, OSError):
        pass  # not JSON (a date, a number key) or not writable: parsed each time, as before
    return raw


def _read_lock(path: Path) -> str:
    """The lock's text, read as xarch.smallfile does (a regular file, bounded): a lock linked to
    /dev/zero or a FIFO is one line, exit 2, never a hang or an out-of-memory kill."""
    from xarch.smallfile import read_regular

    return read_regular(path, MAX_LOCK_BYTES, LockError, "run `xarch lock` again").decode("utf-8")
