"""The recipe's Python wheels in a build: the lock's python section made, checked and installed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xarch import platforms as platform_data
from xarch.errors import BuildError
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe
from xarch.sources.python.config import PythonSpec, read_requirements
from xarch.sources.python.lock import (
    PythonLock,
    drift,
    dump_section,
    load_section,
    requirements_digest,
)
from xarch.sources.python.resolve import Target, resolve, target_for, uv_version

if TYPE_CHECKING:
    from xarch.sources.debian.lock import Lock


IMAGE_SET = "image"


@dataclass(frozen=True)
class Part:
    """One python: section of a recipe: the image's, or a stage's (xarch/build/python_stages.py).

    DEBIAN_SET is the package set of xarch.lock its interpreter and libc come from ("image" or
    the stage's name); LOC is where it sits in the recipe, for error lines."""

    spec: PythonSpec
    debian_set: str = IMAGE_SET
    loc: tuple[str, ...] = ("python",)

    @property
    def field(self) -> str:
        """The section's field in error lines: `python`, `stages.gen.python`."""
        return ".".join(self.loc)

    @property
    def root(self) -> str:
        """What the wheels are installed into, in messages: `image` or `stage root`."""
        return "image" if self.debian_set == IMAGE_SET else "stage root"


def image_part(loaded: LoadedRecipe) -> Part:
    """The recipe's top-level python: section as a Part (the recipe must have one)."""
    spec = loaded.recipe.python
    assert spec is not None
    return Part(spec)


def lock_file(loaded: LoadedRecipe) -> Path:
    """The recipe's lock: `xarch.lock` beside the recipe file (absolute; may not exist yet);
    raises nothing."""
    return loaded.path.resolve().parent / "xarch.lock"


def _debian_version(
    lock: Lock | None, platform: str, names: Callable[[str], bool], debian_set: str = IMAGE_SET
) -> str | None:
    if lock is None:
        return None
    for package in lock.packages.get(debian_set, {}).get(platform, []):
        if names(package.name):
            return re.sub(r"^\d+:", "", package.version)  # without Debian's epoch
    return None


def _is_python(name: str) -> bool:
    """Debian's interpreter packages: python3, python3.11, and their -minimal forms (a stage
    root often has only python3-minimal)."""
    return bool(re.fullmatch(r"python3(\.\d+)?(-minimal)?", name))


def targets(
    loaded: LoadedRecipe, debian: Lock | None, platforms: list[Platform] | None = None,
    part: Part | None = None,
) -> dict[str, Target]:
    """platform name → Target for every platform of the recipe (or PLATFORMS), for PART (default:
    the image's python section). Raises RecipeError naming the field to add when the version or
    glibc cannot be known."""
    part = part or image_part(loaded)
    spec = part.spec
    result: dict[str, Target] = {}
    for platform in platforms or [platform_data.get(name) for name in loaded.recipe.platforms]:
        python = spec.interpreter_version()
        if python is None:
            found = _debian_version(debian, platform.name, _is_python, part.debian_set)
            python = ".".join(found.split(".")[:2]) if found else None
        if python is None or not re.fullmatch(r"3\.\d{1,2}", python):
            packages = "" if part.debian_set == IMAGE_SET else f" (stages.{part.debian_set}.packages)"
            raise loaded.error(
                (*part.loc, "interpreter"),
                f"cannot tell {spec.interpreter}'s Python version on "
                f"{platform.name}: name it python3.N, give {part.field}.version, or install python3 "
                f"from sources.debian{packages}",
            )
        glibc = spec.glibc
        if glibc is None:
            found = _debian_version(debian, platform.name, lambda name: name == "libc6", part.debian_set)
            glibc = ".".join(re.split(r"[.-]", found)[:2]) if found else None
        if glibc is None or not re.fullmatch(r"2\.\d{1,3}", glibc):
            raise loaded.error(
                part.loc,
                f"cannot tell the {part.root}'s glibc on {platform.name}: give "
                f'{part.field}.glibc (e.g. "2.36") or install libc6 from sources.debian',
            )
        result[platform.name] = target_for(platform, python, glibc)
    return result


def full_version(debian: Lock | None, platform: str, version: str, debian_set: str = IMAGE_SET) -> str:
    """3.11.2 from Debian's python3.11 package, else VERSION (for a venv's pyvenv.cfg)."""
    found = _debian_version(
        debian, platform, lambda name: name in (f"python{version}", f"python{version}-minimal"), debian_set
    )
    match = re.match(r"\d+\.\d+\.\d+", found or "")
    return match.group(0) if match else version


def resolve_python(
    loaded: LoadedRecipe, debian: Lock | None, say: Callable[[str], None], part: Part | None = None
) -> PythonLock:
    """Resolve PART (default: the image's python section) for every platform (uv, see resolve.py).

    Raises RecipeError (exit 2) for bad requirements or an unknown Python/glibc version,
    WheelResolveError (exit 2) when no wheel fits, NetworkError (exit 4), HostError (exit 3) without uv."""
    part = part or image_part(loaded)
    spec = part.spec
    requirements = read_requirements(spec, loaded.folder, loaded.path, part.field)
    lock = PythonLock(spec.index_url, requirements_digest(requirements), uv_version())
    for name, target in targets(loaded, debian, part=part).items():
        say(f"{part.field}: resolving {len(requirements)} requirements for {target.describe()}")
        lock.targets[name] = target
        lock.wheels[name] = resolve(requirements, target, spec.index_url)
        say(f"{part.field} on {name}: {len(lock.wheels[name])} wheels")
    return lock


def lock_drift(
    loaded: LoadedRecipe, lock: PythonLock | None, debian: Lock | None, part: Part | None = None
) -> list[str]:
    """Why LOCK (its python section, or a stage's wheels) no longer fits PART, one phrase each
    (xarch/sources/python/lock.py drift); [] when current. Raises RecipeError (exit 2) for bad
    requirements or an unknown Python/glibc version (targets)."""
    part = part or image_part(loaded)
    if lock is None:
        return ["xarch.lock has no python section" if part.debian_set == IMAGE_SET
                else "xarch.lock has no python wheels for it"]
    requirements = read_requirements(part.spec, loaded.folder, loaded.path, part.field)
    return drift(lock, requirements, part.spec.index_url, targets(loaded, debian, part=part))


def refuse_or_say_drift(path: Path, differences: list[str], locked: bool, reporter: Reporter,
                        what: str) -> None:
    """A python section of PATH (xarch.lock) drifted from the recipe by DIFFERENCES: BuildError
    (exit 2) under --locked (LOCKED), else say that WHAT is resolved again."""
    if locked:
        raise BuildError(f"--locked: {path.name} does not match the recipe: {'; '.join(differences)}")
    reporter.info(f"{path.name}: {'; '.join(differences)}: resolving {what}")


def ensure_python_lock(
    loaded: LoadedRecipe, debian: Lock | None, locked: bool, reporter: Reporter
) -> PythonLock | None:
    """The python section to build from: resolved when missing or stale (and written to
    xarch.lock), unless LOCKED; None when the recipe has no python section. Raises BuildError
    (exit 2) for a stale lock under --locked, PythonLockError (exit 2) for a malformed one, else
    as resolve_python."""
    if loaded.recipe.python is None:
        return None
    path = lock_file(loaded)
    current = load_section(path)
    differences = lock_drift(loaded, current, debian)
    if not differences:
        return current
    refuse_or_say_drift(path, differences, locked, reporter, "the python dependencies")
    lock = resolve_python(loaded, debian, reporter.detail)
    dump_section(path, lock)
    return lock


def install_python(
    tree: Tree,
    loaded: LoadedRecipe,
    lock: PythonLock,
    debian: Lock | None,
    platform: Platform,
    store: Store,
    reporter: Reporter,
) -> None:
    """Fetch (verified) and install PLATFORM's wheels into TREE; nothing of them runs.

    Raises WheelFetchError (exit 4) when a wheel cannot be fetched or its sha256 differs from
    the lock, WheelInstallError (exit 2) for a malformed wheel (PyPA RECORD, wheel spec)."""
    from xarch.sources.python.install import fetch_wheels, install_wheels

    spec = loaded.recipe.python
    assert spec is not None
    wheels = lock.for_platform(platform.name)
    target = lock.targets[platform.name]
    fetch_wheels(wheels, store, say=reporter.info)
    files = install_wheels(
        tree, wheels, spec, target.python, store, full_version(debian, platform.name, target.python)
    )
    reporter.detail(f"[{platform.name}] python: {len(wheels)} wheels, {files} files")


def check_interpreter(tree: Tree, loaded: LoadedRecipe, platform: Platform) -> None:
    """The interpreter the scripts name is in the finished tree (from packages, files or a copy);
    else RecipeError (exit 2) naming `python.interpreter`."""
    spec = loaded.recipe.python
    assert spec is not None
    if spec.interpreter not in tree:
        raise loaded.error(
            ("python", "interpreter"),
            f"{spec.interpreter} is not in the {platform.name} image: "
            "install python3 (packages:) or give the interpreter's path",
        )


def cache_material(lock: PythonLock | None, platform: Platform) -> str | None:
    """What the image cache key needs of the python section for PLATFORM (None: no section)."""
    if lock is None:
        return None
    from xarch.sources.python.install import wheels_digest

    return wheels_digest(lock.wheels.get(platform.name, []))
