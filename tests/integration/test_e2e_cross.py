"""End to end: a cross build from locked Debian packages (the real mirror), as a user runs it.

A plain Makefile (honouring CC, CFLAGS, LDFLAGS) links a small program against zlib from
`zlib1g-dev` in the stage: on an amd64 host the arm64 stage runs in a root of amd64
packages (the locked aarch64 cross toolchain) with zlib1g-dev:arm64 beside it. An
emulated arm64 stage then runs the result under QEMU. Nothing of the host's toolchain is
used: hiding the host's cross tools from PATH gives the same digest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, image_files, index_digest, xarch, xarch_ok
from tests.support.hostpath import path_without_cross_tools
from tests.support.needs import need_tool, not_applicable
from xarch import platforms

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

ZPIPE_C = r"""#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(void) {
    const char *text = "hello hello hello hello";
    unsigned char out[128]; uLongf size = sizeof out;
    if (compress(out, &size, (const unsigned char *)text, strlen(text)) != Z_OK) return 1;
    printf("zlib %s: %zu -> %lu bytes\n", zlibVersion(), strlen(text), (unsigned long)size);
    return 0;
}
"""
MAKEFILE = """CFLAGS ?= -O2
zpipe: zpipe.o
\t$(CC) $(LDFLAGS) -o $@ zpipe.o -lz
zpipe.o: zpipe.c
\t$(CC) $(CFLAGS) -c -o $@ zpipe.c
"""
RECIPE = f"""\
name: zpipe
platforms: [arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
stages:
  build:
    cross: true
    packages: [make, zlib1g-dev]
    steps:
      - run: |
          make CFLAGS="-O2 -Wall"
          mkdir -p /out && cp zpipe /out/
          {{ echo "cc $(command -v "$CC")"; pwd; dpkg -S "$(command -v "$CC")"
            dpkg --print-foreign-architectures
            dpkg-query -W -f='${{Package}}:${{Architecture}} ${{Status}}\\n' zlib1g-dev:arm64 make
            # Nothing of the host's /usr/bin: no QEMU, no python or pip to run.
            echo "host tools: $(command -v qemu-aarch64-static python3 pip3 pip || true)"
          }} > /out/facts
  check:
    strategy: emulate
    packages: [dash, zlib1g]
    copy:
      - {{from: "build:/out/zpipe", dst: /zpipe}}
    steps:
      - run: /zpipe > /said
copy:
  - {{from: "build:/out/zpipe", dst: /zpipe, mode: "0755"}}
  - {{from: "build:/out/facts", dst: /facts}}
  - {{from: "check:/said", dst: /said}}
"""
EM_AARCH64 = 183


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if platforms.host().name != "amd64":
        not_applicable("the cross root here is locked for amd64 hosts building arm64")
    need_tool("qemu-aarch64-static")
    folder = tmp_path_factory.mktemp("zpipe")
    (folder / "xarch.yaml").write_text(RECIPE)
    (folder / "zpipe.c").write_text(ZPIPE_C)
    (folder / "Makefile").write_text(MAKEFILE)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")  # the downloads are shared by the module's builds


@pytest.fixture(scope="module")
def built(project: Path, cache: Path) -> tuple[Path, str]:
    xarch_ok("lock", "-f", str(project / "xarch.yaml"), cache=cache, timeout=1800)
    out = project.parent / "out-first"
    result = xarch_ok("build", "-f", str(project / "xarch.yaml"), "--locked", "-o", f"oci:{out}", cache=cache,
                      timeout=1800)
    return out, result.stderr


def test_the_lock_pins_both_architectures_of_the_cross_root(project: Path, built: tuple[Path, str]) -> None:
    text = (project / "xarch.lock").read_text()
    assert "amd64->arm64:" in text  # built on amd64 for arm64
    import yaml

    root = yaml.safe_load(text)["packages"]["build"]["amd64->arm64"]
    archs = {(p["name"], p["architecture"]) for p in root}
    assert ("gcc-aarch64-linux-gnu", "amd64") in archs and ("zlib1g-dev", "arm64") in archs
    assert ("make", "amd64") in archs and ("libc6", "amd64") in archs and ("libc6", "arm64") in archs
    assert all(len(p["sha256"]) == 64 for p in root)


def test_makefile_cross_links_zlib_and_runs_under_qemu(built: tuple[Path, str], tmp_path: Path) -> None:
    out, stderr = built
    assert "[arm64] stage build: cross" in stderr and "[arm64] stage check: emulate" in stderr
    files = image_files(out, "arm64")
    binary = files["zpipe"].data
    assert binary[:4] == b"\x7fELF" and int.from_bytes(binary[18:20], "little") == EM_AARCH64
    (tmp_path / "zpipe").write_bytes(binary)
    dynamic = subprocess.run([need_tool("readelf"), "-d", str(tmp_path / "zpipe")], capture_output=True,
                             text=True, check=True).stdout
    assert "Shared library: [libz.so.1]" in dynamic
    # The emulated arm64 stage ran it under QEMU against zlib1g:arm64.
    assert files["said"].data.startswith(b"zlib 1.2.13: 23 -> ")


def test_the_compiler_is_the_roots_and_dpkg_knows_both_architectures(built: tuple[Path, str]) -> None:
    out, _ = built
    facts = image_files(out, "arm64")["facts"].data.decode().splitlines()
    assert facts == [
        "cc /usr/bin/aarch64-linux-gnu-gcc",
        "/src",
        "gcc-aarch64-linux-gnu: /usr/bin/aarch64-linux-gnu-gcc",  # from the root's dpkg database
        "arm64",
        "make:amd64 install ok installed",
        "zlib1g-dev:arm64 install ok installed",
        "host tools: ",
    ]


def test_the_strategy_is_recorded_in_the_image_history(built: tuple[Path, str]) -> None:
    out, _ = built
    nested = json.loads((out / "blobs" / "sha256" / index_digest(out).removeprefix("sha256:")).read_bytes())
    manifest = json.loads((out / "blobs" / "sha256" / nested["manifests"][0]["digest"][7:]).read_bytes())
    config = json.loads((out / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    notes = [h["created_by"] for h in config["history"] if h.get("empty_layer")]
    assert notes == ["xarch stage build: cross on amd64", "xarch stage check: emulate"]


def test_same_digest_when_the_host_has_no_cross_toolchain(project: Path, cache: Path, built: tuple[Path, str],
                                                         tmp_path: Path) -> None:
    # Outside pytest's root-only tmp: the sandbox's own account follows this PATH too.
    folder = Path(tempfile.mkdtemp(prefix="xarch-bare-path-"))
    try:
        folder.chmod(0o755)
        bare = path_without_cross_tools(folder / "bin")
        assert shutil.which("aarch64-linux-gnu-gcc", path=bare) is None
        out = tmp_path / "out"
        xarch_ok("build", "-f", str(project / "xarch.yaml"), "--locked", "--no-cache", "-q", "-o",
                 f"oci:{out}", cache=cache, extra_env={"PATH": bare}, timeout=1800)
    finally:
        shutil.rmtree(folder)
    first, _ = built
    assert index_digest(out) == index_digest(first)


def test_verify_against_uses_the_recorded_strategy(project: Path, cache: Path,
                                                   built: tuple[Path, str]) -> None:
    out, _ = built
    same = xarch("verify", "-f", str(project / "xarch.yaml"), "--against", str(out), cache=cache,
                 timeout=1800)
    assert same.returncode == 0, same.stderr
    assert "[arm64] stage build: cross (the image recorded cross on amd64)" in same.stderr
    other = xarch("verify", "-f", str(project / "xarch.yaml"), "--against", str(out), "--strategy", "emulate",
                  cache=cache, timeout=1800)
    assert other.returncode != 0
    assert other.stderr.strip().splitlines()[-1] == (
        "xarch: error: stage 'build' (arm64): the image was built with strategy cross on amd64, "
        "--strategy asks for emulate")


CMAKELISTS = """cmake_minimum_required(VERSION 3.21)
project(zpipe C)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(ZPC REQUIRED zlib)
add_executable(zpipe zpipe.c)
target_link_libraries(zpipe ZLIB::ZLIB)
"""
CMAKE_RECIPE = f"""\
name: zpipe-cmake
platforms: [arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
stages:
  build:
    cross: true
    packages: [cmake, zlib1g-dev]
    steps:
      - run: |
          cmake -S . -B /tmp/b -DCMAKE_BUILD_TYPE=Release
          cmake --build /tmp/b
          mkdir -p /out && cp /tmp/b/zpipe /out/
          grep -E "^(ZLIB_LIBRARY_RELEASE|ZPC_[A-Z_]*):" \\
            /tmp/b/CMakeCache.txt > /out/found
copy:
  - {{from: "build:/out/zpipe", dst: /zpipe, mode: "0755"}}
  - {{from: "build:/out/found", dst: /found}}
"""


def test_cmake_project_finds_the_target_zlib_through_the_toolchain_file(project: Path, cache: Path,
                                                                         tmp_path: Path) -> None:
    """CMAKE_TOOLCHAIN_FILE alone (no -D on the command line): find_package and pkg-config
    find zlib1g-dev:arm64 in the multiarch folders."""
    folder = tmp_path / "cmake"
    folder.mkdir()
    (folder / "xarch.yaml").write_text(CMAKE_RECIPE)
    (folder / "zpipe.c").write_text(ZPIPE_C)
    (folder / "CMakeLists.txt").write_text(CMAKELISTS)
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(folder / "xarch.yaml"), "-q", "-o", f"oci:{out}", cache=cache, timeout=1800)
    files = image_files(out, "arm64")
    assert int.from_bytes(files["zpipe"].data[18:20], "little") == EM_AARCH64
    cached = dict(line.split("=", 1) for line in files["found"].data.decode().splitlines())
    found = {key.split(":")[0]: value for key, value in cached.items()}
    assert found["ZLIB_LIBRARY_RELEASE"] == "/usr/lib/aarch64-linux-gnu/libz.so", found
    # pkg-config is the target's (aarch64 personality): zlib.pc of zlib1g-dev:arm64
    assert found["ZPC_FOUND"] == "1" and found["ZPC_LIBDIR"] == "/usr/lib/aarch64-linux-gnu", found
