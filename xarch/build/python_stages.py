"""A stage's `python:` section: wheels locked per platform, installed into the stage root.

    stages:
      gen:
        packages: [python3-minimal, dash]     # the interpreter and glibc the wheels must fit
        python: {requirements: [jinja2==3.1.*]}
        steps: [{run: python3 gen.py > /out/index.html}]

The section has the image's shape (xarch/sources/python/config.py) and is resolved the same
way (uv, per platform; see commands.py), with the Python version and glibc taken from the
stage's own Debian package set. It is pinned in xarch.lock's `python_stages:` section, keyed
by stage name (lock.py), installed by PyPA's installer into the stage's tree before the root
is written to disk (install.py), so the steps import the packages with no pip and no network.
The wheels are part of the stage root, so a changed pin changes the root's digest and every
step's cache key (xarch/run/cache.py), and nothing else does.

A cross stage is refused at load (xarch/recipe.py): its python is the build machine's, while
the wheels are locked for the target.
"""

from __future__ import annotations

from collections.abc import Callable

from xarch.build.python import Part, full_version, lock_drift, lock_file, refuse_or_say_drift, resolve_python
from xarch.errors import NetworkError
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe
from xarch.sources.debian.lock import Lock
from xarch.sources.python.lock import (
    PythonLock,
    dump_stage_sections,
    load_stage_sections,
)
from xarch.sources.python.resolve import NoResolver, WheelResolveError


def stage_parts(loaded: LoadedRecipe) -> dict[str, Part]:
    """stage name → its python part, for the stages that have a `python:` section (recipe order)."""
    return {
        name: Part(stage.python, name, ("stages", name, "python"))
        for name, stage in loaded.recipe.stages.items()
        if stage.python is not None
    }


def has_stage_python(loaded: LoadedRecipe) -> bool:
    """Whether any stage of the recipe has a python: section."""
    return any(stage.python is not None for stage in loaded.recipe.stages.values())


def resolve_stage(
    loaded: LoadedRecipe, debian: Lock | None, name: str, say: Callable[[str], None]
) -> PythonLock:
    """Resolve stage NAME's python section for every platform. The resolver's errors keep their
    class (exit code) and name the stage's field: `stages.gen.python: onlyamd has no wheel for arm64 …`:
    WheelResolveError and NoResolver (exit 2), HostError without uv (exit 3), NetworkError
    (exit 4); RecipeError (exit 2) for bad requirements or an unknown Python/glibc version."""
    part = stage_parts(loaded)[name]
    try:
        return resolve_python(loaded, debian, say, part)
    except (WheelResolveError, NoResolver, NetworkError) as error:
        text = str(error).removeprefix("python: ")
        raise type(error)(f"{part.field}: {text}") from None


def stage_drift(loaded: LoadedRecipe, locks: dict[str, PythonLock], debian: Lock | None) -> list[str]:
    """What differs between LOCKS (xarch.lock's python_stages) and the recipe, one phrase each,
    each naming its stage (`stage gen: python requirements changed`); [] when current. Raises
    RecipeError (exit 2) as lock_drift."""
    found: list[str] = []
    parts = stage_parts(loaded)
    for name, part in parts.items():
        found += [f"stage {name}: {line}" for line in lock_drift(loaded, locks.get(name), debian, part)]
    for name in sorted(set(locks) - set(parts)):
        found.append(f"python wheels for stage {name}, which has no python section in the recipe")
    return found


def lock_stages(
    loaded: LoadedRecipe, debian: Lock | None, say: Callable[[str], None]
) -> dict[str, PythonLock]:
    """Resolve every stage's python section and write xarch.lock's python_stages section (other
    sections kept); stage name → lock. Raises as resolve_stage; OSError when the lock cannot be written."""
    locks = {name: resolve_stage(loaded, debian, name, say) for name in stage_parts(loaded)}
    dump_stage_sections(lock_file(loaded), locks)
    return locks


def ensure_stage_locks(
    loaded: LoadedRecipe, debian: Lock | None, locked: bool, reporter: Reporter
) -> dict[str, PythonLock]:
    """The stages' python locks to build from: resolved when missing or stale, unless LOCKED
    (then BuildError, exit 2, names the stage and what drifted). {} for a recipe without any."""
    if not has_stage_python(loaded):
        return {}
    path = lock_file(loaded)
    current = load_stage_sections(path)
    differences = stage_drift(loaded, current, debian)
    if not differences:
        return current
    refuse_or_say_drift(path, differences, locked, reporter, "the stages' python dependencies")
    return lock_stages(loaded, debian, reporter.detail)


def install_stage_python(
    tree: Tree,
    loaded: LoadedRecipe,
    name: str,
    lock: PythonLock,
    debian: Lock | None,
    platform: Platform,
    store: Store,
    reporter: Reporter,
) -> None:
    """Fetch (sha256 checked) and install stage NAME's wheels for PLATFORM into the stage's TREE.

    Raises WheelFetchError (exit 4) for a wheel not fetched or not matching the lock's sha256,
    WheelInstallError (exit 2) for a malformed wheel (PyPA RECORD, wheel spec)."""
    from xarch.sources.python.install import fetch_wheels, install_wheels

    part = stage_parts(loaded)[name]
    wheels = lock.for_platform(platform.name)
    target = lock.targets[platform.name]
    fetch_wheels(wheels, store, say=reporter.info)
    version = full_version(debian, platform.name, target.python, name)
    files = install_wheels(tree, wheels, part.spec, target.python, store, version)
    reporter.detail(f"[{platform.name}] stage {name}: python: {len(wheels)} wheels, {files} files")


def check_stage_interpreter(tree: Tree, loaded: LoadedRecipe, name: str, platform: Platform) -> None:
    """The interpreter stage NAME's scripts name is in its root (from its packages, files or copy);
    else RecipeError (exit 2) naming `stages.NAME.python.interpreter`."""
    part = stage_parts(loaded)[name]
    if part.spec.interpreter not in tree:
        raise loaded.error(
            (*part.loc, "interpreter"),
            f"{part.spec.interpreter} is not in stage {name}'s root for {platform.name}: install "
            f"python3 (stages.{name}.packages) or give the interpreter's path",
        )


def stage_cache_material(locks: dict[str, PythonLock], platform: Platform) -> dict[str, str]:
    """What the image cache key needs of the stages' wheels for PLATFORM (stage → digest)."""
    from xarch.sources.python.install import wheels_digest

    return {name: wheels_digest(lock.wheels.get(platform.name, [])) for name, lock in sorted(locks.items())}
