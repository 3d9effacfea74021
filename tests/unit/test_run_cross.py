"""The cross strategy's environment, CMake toolchain and Meson cross file, checked against
Debian's own tools (dpkg-architecture, cmake). Building in a real cross root from the
archive is tests/integration/test_e2e_cross.py."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

from tests.support.needs import need_tool
from xarch import platforms
from xarch.run import cross

AMD64 = platforms.get("amd64")
TARGETS = [p for p in platforms.all_platforms().values() if p.name != "amd64"]


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
def test_deb_variables_are_what_dpkg_architecture_says(target: platforms.Platform) -> None:
    tool = need_tool("dpkg-architecture")
    said = subprocess.run([tool, f"-a{target.debian_arch}", f"-A{target.debian_arch}", "-f"],
                          capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "DEB_BUILD_ARCH": "amd64"})
    debian = dict(line.split("=", 1) for line in said.stdout.splitlines())
    ours = {k: v for k, v in cross.toolchain_env(target, AMD64).items() if k.startswith("DEB_")}
    assert ours and all(debian[key] == value for key, value in ours.items()), (
        {key: (value, debian.get(key)) for key, value in ours.items() if debian.get(key) != value})
    assert {"DEB_HOST_MULTIARCH", "DEB_BUILD_MULTIARCH", "DEB_HOST_GNU_TYPE", "DEB_BUILD_ARCH"} <= set(ours)


def test_tools_are_the_triplet_prefixed_ones() -> None:
    env = cross.toolchain_env(platforms.get("arm64"), AMD64)
    assert env["CC"] == "aarch64-linux-gnu-gcc" and env["CXX"] == "aarch64-linux-gnu-g++"
    assert env["AR"] == "aarch64-linux-gnu-ar" and env["STRIP"] == "aarch64-linux-gnu-strip"
    assert env["PKG_CONFIG"] == "aarch64-linux-gnu-pkg-config"
    # Debian multiarch needs no sysroot: nothing points the compiler anywhere.
    assert not {"CFLAGS", "CPPFLAGS", "LDFLAGS", "PKG_CONFIG_SYSROOT_DIR", "DESTDIR"} & set(env)


def test_cmake_reads_the_toolchain_file(tmp_path: Path) -> None:
    cmake = need_tool("cmake")
    arm64 = platforms.get("arm64")
    for path, data in cross.cross_files(arm64).items():
        (tmp_path / Path(path).name).write_bytes(data)
    script = tmp_path / "print.cmake"
    script.write_text(f'include("{tmp_path}/aarch64-linux-gnu.cmake")\n'
                      'message("${CMAKE_SYSTEM_NAME} ${CMAKE_SYSTEM_PROCESSOR} ${CMAKE_C_COMPILER} '
                      '${CMAKE_LIBRARY_ARCHITECTURE} ${PKG_CONFIG_EXECUTABLE}")\n')
    said = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, check=True)
    assert said.stderr.strip() == ("Linux aarch64 aarch64-linux-gnu-gcc aarch64-linux-gnu "
                                   "/usr/bin/aarch64-linux-gnu-pkg-config")


@pytest.mark.parametrize(("name", "family", "endian"), [("arm64", "aarch64", "little"),
                                                        ("s390x", "s390x", "big"), ("386", "x86", "little")])
def test_meson_cross_file(name: str, family: str, endian: str) -> None:
    plat = platforms.get(name)
    files = cross.cross_files(plat)
    parser = configparser.ConfigParser()
    parser.read_string(files[f"{cross.CROSS_DIR}/{plat.triplet}.meson"].decode())
    assert parser["host_machine"]["cpu_family"] == f"'{family}'"
    assert parser["host_machine"]["endian"] == f"'{endian}'"
    assert parser["binaries"]["c"] == f"'{plat.triplet}-gcc'"


def test_a_cross_root_needs_no_host_tool_only_data() -> None:
    ghost = platforms.Platform(name="ghost", os="linux", architecture="ghost", variant=None,
                               debian_arch="ghost", triplet="ghost-linux-gnu", qemu="ghost",
                               uname_machine="ghost")
    assert cross.toolchain_problem(platforms.get("arm64"), AMD64) is None
    problem = cross.toolchain_problem(ghost, AMD64)
    assert problem is not None and problem.why == "platforms/ghost.yaml lists no cross.root_packages"
