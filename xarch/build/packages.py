"""The recipe's Debian packages: keep xarch.lock in step with the recipe, install from it.

The lock covers every platform of the recipe and every package set: "image" for the
image's own packages, and one per stage that has packages; a stage that may cross-build
(`cross: true` or `strategy: cross`) also has cross roots (see sources/debian/lock.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from xarch import platforms as platform_data
from xarch.errors import BuildError
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.debian.lock import DEFAULT_SET, Lock, LockedPackage, has_packages, lock_matches, mirror_of
from xarch.sources.debian.locking import lock_path, run_lock

if TYPE_CHECKING:
    from xarch.sources.debian.pkgtrees import PackageTrees

IMAGE_SET = DEFAULT_SET


def selections(loaded: LoadedRecipe) -> dict[str, PackageSelection]:
    """{package set: PackageSelection} of the recipe: `image` (IMAGE_SET) for its packages:, and one
    set per stage with packages:, as `xarch lock` pins them."""
    recipe = loaded.recipe
    result = {IMAGE_SET: recipe.packages} if recipe.packages is not None else {}
    for name, stage in recipe.stages.items():
        if stage.packages is not None:
            result[name] = stage.packages
    return result


def cross_selections(loaded: LoadedRecipe) -> dict[str, PackageSelection]:
    """The stages that may cross-build, and their packages (for the target architecture)."""
    return {name: stage.packages or PackageSelection.model_construct()
            for name, stage in loaded.recipe.stages.items()
            if (stage.cross or stage.strategy == "cross") and stage.steps and not stage.dockerfile}


def sources(loaded: LoadedRecipe) -> list[DebianSource]:
    """The recipe's Debian sources (sources.debian), in the recipe's order."""
    return list(loaded.recipe.sources.debian)


def lock_inputs(loaded: LoadedRecipe) -> tuple[list[DebianSource], dict[str, PackageSelection],
                                               list[platform_data.Platform], dict[str, PackageSelection]]:
    """What `xarch lock` resolves: (sources, selections, every platform of the recipe, cross stages)."""
    platforms = [platform_data.get(name) for name in loaded.recipe.platforms]
    return sources(loaded), selections(loaded), platforms, cross_selections(loaded)


def ensure_lock(loaded: LoadedRecipe, locked: bool, store: Store, reporter: Reporter) -> Lock | None:
    """The lock to build from: created when missing and updated when stale, unless LOCKED."""
    source_list, wanted, platforms, cross = lock_inputs(loaded)
    if not wanted and not cross:
        return None
    path = lock_path(loaded.path)
    # A lock may hold only the python section; its parse is kept in the cache (and taken by Lock.load).
    if not path.exists() or not has_packages(path, store.root / "parsed"):
        if locked:
            raise BuildError(f"--locked: {path} does not exist; run `xarch lock`")
        reporter.info(f"no {path.name} yet: resolving packages and creating it")
        return run_lock(loaded.path, source_list, wanted, platforms, store=store, say=reporter.detail,
                        cross=cross)
    lock = Lock.load(path, store.root / "parsed")
    differences = lock_matches(lock, source_list, wanted, platforms, cross)
    if differences:
        if locked:
            raise BuildError(f"--locked: {path.name} does not match the recipe: {'; '.join(differences)}")
        reporter.info(f"{path.name} is out of date ({'; '.join(differences)}): resolving again")
        return run_lock(loaded.path, source_list, wanted, platforms, store=store, say=reporter.detail,
                        cross=cross)
    return lock


def package_trees(store: Store) -> PackageTrees:
    """The cache of unpacked package trees in STORE, its files owned by the host id a step's uid 0
    is (xarch.run.sandbox.host_owner), so a stage root's overlay shows them as the step's own."""
    from xarch.run.sandbox import SandboxUnavailable, host_owner
    from xarch.sources.debian.pkgtrees import PackageTrees

    try:
        owner = host_owner()
    except SandboxUnavailable:  # a bad XARCH_SANDBOX_ID: an image without steps needs none
        owner = None
    return PackageTrees(store, owner)


def install_set(tree: Tree, loaded: LoadedRecipe, lock: Lock, set_name: str,
                platform: platform_data.Platform, store: Store, epoch: int, reporter: Reporter,
                build: platform_data.Platform | None = None,
                fetch_say: Callable[[str], None] | None = None) -> None:
    """Fetch (verified) and unpack one package set of PLATFORM into TREE; no scripts run.

    With BUILD: the set's cross root for PLATFORM built on BUILD (both architectures'
    packages; dpkg's database names BUILD's architecture native). FETCH_SAY: where download
    lines go (default REPORTER.info)."""
    from xarch.sources.debian.fetch import fetch_packages
    from xarch.sources.debian.install import install_packages

    if build is None:
        entries = lock.entries(platform.name, set_name)
    else:
        entries = lock.cross_entries(platform.name, build.name, set_name)
    fetch_packages(entries, mirror_of(sources(loaded)), store, say=fetch_say or reporter.info)
    native = build.debian_arch if build is not None else platform.debian_arch
    report = install_packages(tree, entries, store, epoch, native=native, trees=package_trees(store))
    reporter.detail(f"[{platform.name}] {set_name}: {len(report.installed)} packages unpacked")
    for line in report.lines():
        reporter.scripts(f"[{platform.name}] {set_name}: {line}")
    selection = selections(loaded).get(set_name)
    if selection is not None and selection.maintainer_scripts == "run":
        _run_scripts(tree, loaded, set_name, entries, platform, epoch, reporter, build)
        return
    summary = report.effects.summary()
    if summary:
        reporter.info(f"[{platform.name}] {set_name}: {summary}")


def _run_scripts(tree: Tree, loaded: LoadedRecipe, set_name: str, entries: list[LockedPackage],
                 platform: platform_data.Platform, epoch: int, reporter: Reporter,
                 build: platform_data.Platform | None) -> None:
    """`maintainer_scripts: run` (xarch.build.runscripts)."""
    from xarch.build.runscripts import run_maintainer_scripts

    where = ("packages",) if set_name == IMAGE_SET else ("stages", set_name, "packages")
    if build is not None:
        message = "a cross stage's root cannot run maintainer scripts (its packages are of two architectures)"
        raise loaded.error((*where, "maintainer_scripts"), message)
    label = f"[{platform.name}] {set_name}"
    count = run_maintainer_scripts(tree, entries, platform, epoch,
                                   lambda line: reporter.detail(f"{label}: {line}"))
    reporter.info(f"{label}: ran {count} maintainer scripts")


def add_accounts(tree: Tree, loaded: LoadedRecipe, epoch: int) -> None:
    """Write the recipe's accounts: (users, groups) into TREE's /etc/passwd, group, shadow and
    gshadow (timestamps from EPOCH, seconds). Raises RecipeError (exit 2) naming the account
    field when a name or id clashes (xarch.sources.debian.install.AccountError)."""
    accounts = loaded.recipe.accounts
    if not accounts.users and not accounts.groups:
        return
    from xarch.sources.debian.install import AccountError, Group, User, write_accounts

    users = [User(u.name, u.uid, u.uid if u.gid is None else u.gid, u.home, u.shell, u.gecos)
             for u in accounts.users]
    groups = [Group(g.name, g.gid, tuple(g.members)) for g in accounts.groups]
    try:
        write_accounts(tree, users, groups, epoch)
    except AccountError as error:
        # One line with the recipe's file, line and field, as every other recipe error.
        specs = accounts.users if error.kind == "user" else accounts.groups
        names = [spec.name for spec in specs]
        index = max(i for i, name in enumerate(names) if name == error.name)  # a repeat is the later
        field = error.field
        if error.kind == "user" and field == "gid" and accounts.users[index].gid is None:
            field = "uid"  # a user without a gid has the uid's number
        message = str(error).removeprefix("accounts: ")
        raise loaded.error(("accounts", f"{error.kind}s", index, field), message) from None
