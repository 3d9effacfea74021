"""The resolver against a real signed repository built from dpkg-deb packages."""

from __future__ import annotations

from typing import Any

import pytest

from xarch import platforms
from xarch.sources.debian.config import DebianSource, PackageSelection, PlatformPackages
from xarch.sources.debian.errors import ResolveError
from xarch.sources.debian.lock import resolve_lock

# The signed test repository and its server (fixtures with teardown).
pytest_plugins = ["tests.support.debian_fixtures"]

AMD64, ARM64 = platforms.get("amd64"), platforms.get("arm64")


def lock_names(source: DebianSource, packages: list[str], plat: platforms.Platform = AMD64,
               **options: Any) -> dict[str, str]:
    lock = resolve_lock(source, PackageSelection(packages=packages, **options), [plat])
    return {p.name: p.version for p in lock.entries(plat.name)}


def test_depends_pre_depends_alternatives_and_highest_version(debian_source: DebianSource) -> None:
    names = lock_names(debian_source, ["app"])
    # Pre-Depends prelib; libfake1 (>= 1.5) takes the highest, 2.0; "mta-virtual |
    # fallback-mta" takes the first alternative, met through mail-agent's Provides.
    assert names == {"app": "1.0", "prelib": "1.0", "libfake1": "2.0", "mail-agent": "1.0"}


def test_recommends_only_when_asked(debian_source: DebianSource) -> None:
    assert "recommended-pkg" not in lock_names(debian_source, ["app"])
    assert "recommended-pkg" in lock_names(debian_source, ["app"], recommends=True)


def test_requested_package_steers_an_alternative(debian_source: DebianSource) -> None:
    names = lock_names(debian_source, ["fallback-mta", "app"])
    assert "fallback-mta" in names and "mail-agent" not in names


def test_real_package_beats_a_virtual_one(debian_source: DebianSource) -> None:
    names = lock_names(debian_source, ["py-tool"])
    assert names == {"py-tool": "1.0", "pyrt": "1.0"}


def test_versioned_provides(debian_source: DebianSource) -> None:
    # vapi (>= 2): vapi-old provides 1, vapi-any provides no version, vapi-new provides 3.
    assert lock_names(debian_source, ["needs-vprov"]) == {"needs-vprov": "1.0", "vapi-new": "1.0"}


def test_multi_arch_any_qualifier(debian_source: DebianSource) -> None:
    assert lock_names(debian_source, ["tool-user"], ARM64) == {"tool-user": "1.0", "interp": "3.0"}
    with pytest.raises(ResolveError, match=r"plain:any, needed by bad-any 1\.0"):
        lock_names(debian_source, ["bad-any"])


def test_essential_only_when_asked(debian_source: DebianSource) -> None:
    assert "ess-base" not in lock_names(debian_source, ["prelib"])
    assert "ess-base" in lock_names(debian_source, ["prelib"], essential=True)


def test_per_platform_additions_and_exclusions(debian_source: DebianSource) -> None:
    selection = PackageSelection(packages=["prelib", "plain"],
                                 platforms={"arm64": PlatformPackages(add=["armonly"], exclude=["plain"])})
    lock = resolve_lock(debian_source, selection, [AMD64, ARM64])
    assert [p.name for p in lock.entries("amd64")] == ["plain", "prelib"]
    arm = [(p.name, p.architecture) for p in lock.entries("arm64")]
    assert arm == [("armonly", "arm64"), ("prelib", "all")]
    assert {p.architecture for p in resolve_lock(debian_source, PackageSelection(packages=["app"]),
                                                 [ARM64]).entries("arm64")} == {"arm64", "all"}


def test_pinned_version(debian_source: DebianSource) -> None:
    assert lock_names(debian_source, ["libfake1=1.0"]) == {"libfake1": "1.0"}


@pytest.mark.parametrize("packages, message", [
    (["broken-missing"], r"cannot satisfy does-not-exist, needed by broken-missing 1\.0 \(amd64\): "
                         r"no package does-not-exist for amd64"),
    (["broken-version"], r"cannot satisfy libfake1 \(>= 9\), needed by broken-version 1\.0 \(amd64\): "
                         r"libfake1 has only 2\.0, 1\.0"),
    (["nonesuch"], r"package nonesuch is not available for amd64"),
    (["armonly"], r"package armonly is not available for amd64"),
    (["mta-virtual"], r"mta-virtual \(amd64\) is a virtual package; list one of its providers instead: "
                      r"mail-agent"),
    (["conflicter", "prelib"], r"conflicter 1\.0 conflicts with prelib 1\.0"),
])
def test_unsatisfiable_is_one_clear_error(debian_source: DebianSource, packages: list[str],
                                          message: str) -> None:
    with pytest.raises(ResolveError, match=message) as caught:
        lock_names(debian_source, packages)
    assert "\n" not in str(caught.value)


def test_same_inputs_same_lock(debian_source: DebianSource) -> None:
    selection = PackageSelection(packages=["app", "tool-user", "needs-vprov"])
    first = resolve_lock(debian_source, selection, [AMD64, ARM64]).dumps()
    second = resolve_lock(debian_source, selection, [AMD64, ARM64]).dumps()
    assert first == second
