"""The resolver on mixed-architecture (Debian multiarch) sets, as a cross root needs them.

Each case is a small universe written as Packages stanzas would say it; the rules are
dpkg's (deparchsatisfied) and the MultiarchSpec's.
"""

from __future__ import annotations

import pytest

from xarch.sources.debian.errors import ResolveError
from xarch.sources.debian.packages import Candidate
from xarch.sources.debian.resolver import Universe, resolve, resolve_cross


def pkg(name: str, arch: str, version: str = "1.0", **fields: str) -> Candidate:
    relation_fields = {key.replace("_", "-"): value for key, value in fields.items()}
    return Candidate(name, version, arch, f"pool/{name}_{version}_{arch}.deb", 1, "0" * 64, "stable", "main",
                     relation_fields)


def both(name: str, version: str = "1.0", **fields: str) -> list[Candidate]:
    return [pkg(name, "amd64", version, **fields), pkg(name, "arm64", version, **fields)]


UNIVERSE = [
    # The build-arch toolchain, as bookworm's gcc-aarch64-linux-gnu pulls it.
    *both("gcc-aarch64-linux-gnu", Depends="binutils-aarch64-linux-gnu, libc6"),
    *both("binutils-aarch64-linux-gnu", Depends="libc6"),
    *both("libc6", Multi_Arch="same", Depends="libgcc-s1"),
    *both("libgcc-s1", Multi_Arch="same"),
    *both("make", Multi_Arch="allowed", Depends="libc6"),
    *both("dash", Multi_Arch="foreign", Depends="libc6"),
    *both("perl", Multi_Arch="allowed", Depends="perl-base"),
    *both("perl-base", Multi_Arch="foreign", Depends="libc6"),
    pkg("libc6-dev-arm64-cross", "all", Depends="libc6-arm64-cross"),
    pkg("libc6-arm64-cross", "all"),
    # Target-arch -dev packages.
    *both("zlib1g-dev", Multi_Arch="same", Depends="zlib1g (= 1.0), libc6-dev | libc-dev"),
    *both("zlib1g", Multi_Arch="same", Depends="libc6"),
    *both("libc6-dev", Multi_Arch="same", Depends="libc6 (= 1.0), linux-libc-dev"),
    *both("linux-libc-dev", Multi_Arch="same"),
    *both("libtool-bin", Multi_Arch="foreign", Depends="perl:any"),
    *both("needs-native", Multi_Arch="same", Depends="make:native"),
    *both("needs-arch", Depends="zlib1g:arm64"),
    pkg("data-common", "all", Multi_Arch="foreign"),
    pkg("plain-common", "all"),
    *both("uses-data", Multi_Arch="same", Depends="data-common"),
    *both("uses-plain", Multi_Arch="same", Depends="plain-common"),
    *both("tool", Depends="libc6"),  # Multi-Arch: no
    *both("uses-tool", Multi_Arch="same", Depends="tool"),
    pkg("skew", "amd64", "1.0", Multi_Arch="same"),
    pkg("skew", "arm64", "2.0", Multi_Arch="same"),
    *both("needs-skew", Multi_Arch="same", Depends="skew"),
    *both("virt-provider", Multi_Arch="foreign", Provides="awk"),
    *both("needs-awk", Multi_Arch="same", Depends="awk"),
]


def cross(toolchain: list[str], target: list[str]) -> dict[str, str]:
    universe = Universe.build("amd64", UNIVERSE, foreign=["arm64"])
    resolution = resolve_cross(universe, toolchain, target, "arm64")
    return {key: cand.architecture for key, cand in resolution.packages.items()}


def test_toolchain_is_native_and_target_dev_packages_sit_beside_it() -> None:
    chosen = cross(["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"], ["zlib1g-dev"])
    assert chosen == {
        # build architecture (dpkg names native packages without a qualifier)
        "gcc-aarch64-linux-gnu": "amd64", "binutils-aarch64-linux-gnu": "amd64", "libc6": "amd64",
        "libgcc-s1": "amd64", "libc6-dev-arm64-cross": "all", "libc6-arm64-cross": "all",
        # target architecture, Multi-Arch: same beside the native libc6
        "zlib1g-dev:arm64": "arm64", "zlib1g:arm64": "arm64", "libc6-dev:arm64": "arm64",
        "libc6:arm64": "arm64", "libgcc-s1:arm64": "arm64", "linux-libc-dev:arm64": "arm64",
    }


def test_a_tool_in_the_stage_packages_is_the_build_architecture_one() -> None:
    # dash (foreign) and make (allowed) are tools steps run: the native ones, even when
    # the toolchain has one already; a library (same) or a plain package is the target's.
    assert cross([], ["dash"]) == {"dash": "amd64", "libc6": "amd64", "libgcc-s1": "amd64"}
    assert cross(["make"], ["make"])["make"] == "amd64"
    assert cross([], ["make"]) == {"make": "amd64", "libc6": "amd64", "libgcc-s1": "amd64"}
    assert cross([], ["tool"])["tool:arm64"] == "arm64"
    assert cross([], ["make:arm64"])["make:arm64"] == "arm64"


def test_foreign_dependency_of_a_target_package_is_met_natively() -> None:
    # libtool-bin:arm64 is Multi-Arch: foreign → native; perl:any takes native perl (allowed).
    chosen = cross([], ["libtool-bin:arm64"])
    assert chosen["libtool-bin:arm64"] == "arm64"
    assert chosen["perl"] == "amd64" and chosen["perl-base"] == "amd64"
    assert "perl:arm64" not in chosen


def test_native_and_arch_qualifiers() -> None:
    chosen = cross([], ["needs-native:arm64", "needs-arch:native"])
    assert chosen["make"] == "amd64" and "make:arm64" not in chosen
    assert chosen["needs-arch"] == "amd64" and chosen["zlib1g:arm64"] == "arm64"
    assert cross([], ["make:native"])["make"] == "amd64"
    assert cross(["make:arm64"], [])["make:arm64"] == "arm64"


def test_arch_all_is_native_and_needs_foreign_to_serve_another_architecture() -> None:
    # data-common (all, M-A foreign) serves arm64; arch all is installed once, natively.
    assert cross([], ["uses-data"])["data-common"] == "all"
    # plain-common (all, M-A no) counts as amd64: an arm64 dependent cannot use it (dpkg).
    message = (r"cannot satisfy plain-common, needed by uses-plain:arm64 1\.0 \(arm64\): "
               r"plain-common has only 1\.0 \(amd64, Multi-Arch: no\)")
    with pytest.raises(ResolveError, match=message):
        cross([], ["uses-plain"])
    assert cross([], ["uses-plain:native"])["plain-common"] == "all"


def test_two_architectures_of_a_package_that_is_not_multi_arch_same_conflict() -> None:
    with pytest.raises(ResolveError, match=r"tool 1\.0 \(Multi-Arch: no.*\) and tool:arm64 1\.0 "
                                           r"\(Multi-Arch: no, needed by uses-tool:arm64 1\.0\) cannot be "
                                           r"installed together"):
        cross(["tool"], ["uses-tool"])


def test_multi_arch_same_needs_one_version_across_architectures() -> None:
    with pytest.raises(ResolveError, match=r"skew 1\.0 .* and skew:arm64 2\.0 .* one version"):
        cross(["skew"], ["needs-skew"])


def test_foreign_provider_serves_a_virtual_dependency_of_the_target() -> None:
    chosen = cross(["virt-provider"], ["needs-awk"])
    assert chosen["virt-provider"] == "amd64" and "virt-provider:arm64" not in chosen


def test_single_architecture_names_stay_unqualified() -> None:
    universe = Universe.build("arm64", UNIVERSE)
    chosen = resolve(universe, ["zlib1g-dev", "libtool-bin"]).packages
    assert "zlib1g-dev" in chosen and all(":" not in key for key in chosen)
    assert {c.architecture for c in chosen.values()} == {"arm64"}


def test_same_request_same_resolution() -> None:
    first = cross(["gcc-aarch64-linux-gnu"], ["zlib1g-dev", "dash", "libtool-bin"])
    second = cross(["gcc-aarch64-linux-gnu"], ["zlib1g-dev", "dash", "libtool-bin"])
    assert first == second and list(first) == sorted(first)
