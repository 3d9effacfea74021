"""The cross strategy, Debian style: steps run natively in a root of build-architecture
packages (the cross toolchain as crossbuild-essential-ARCH pulls it, from the lock) with the
target's packages installed multi-arch beside them (/usr/lib/TRIPLET, /usr/include/TRIPLET).

Nothing comes from the host: no compiler, no QEMU. Debian's cross compilers search the
multiarch folders themselves, so `$CC` links against the target's `-dev` packages with no
sysroot flags. The variables are those `dpkg-architecture -aARCH` and debhelper set for a
cross build; CMake and Meson get a toolchain and a cross file written into the root.

Tools a cross step runs are the build architecture's: whatever a step builds for the host
(a `pip install`, a generated helper) is build-architecture code, not the target's.
"""

from __future__ import annotations

from dataclasses import dataclass

from xarch.oci.tree import Entry, Tree
from xarch.platforms import Platform

CROSS_DIR = "usr/share/xarch/cross"  # in the root: the CMake toolchain and the Meson cross file

# Meson's cpu_family and endianness (https://mesonbuild.com/Reference-tables.html) and
# Debian's multiarch tuple, per Debian architecture. The tuple is the GNU triplet except on i386.
_MESON = {
    "amd64": ("x86_64", "little"), "arm64": ("aarch64", "little"), "armhf": ("arm", "little"),
    "i386": ("x86", "little"), "ppc64el": ("ppc64", "little"), "s390x": ("s390x", "big"),
    "riscv64": ("riscv64", "little"),
}
_MULTIARCH = {"i386": "i386-linux-gnu"}


@dataclass(frozen=True)
class ToolchainProblem:
    """Why the cross strategy cannot serve a platform (one phrase), and the fix to print after
    it ("use strategy emulate"; "" when there is none to suggest)."""

    why: str
    fix: str = ""


def toolchain_problem(platform: Platform, build: Platform | None = None) -> ToolchainProblem | None:
    """Why a cross root cannot exist for PLATFORM (built on BUILD), or None. Only data is
    consulted: the toolchain is fetched from the archive by `xarch lock`, never the host's.
    Raises nothing."""
    from xarch.sources.debian.lock import BUILD_PLATFORMS

    if not platform.cross_root_packages:
        return ToolchainProblem(f"platforms/{platform.slug}.yaml lists no cross.root_packages")
    if build is not None and build.name not in BUILD_PLATFORMS:
        return ToolchainProblem(f"cross roots are locked for {', '.join(BUILD_PLATFORMS)} hosts, "
                                f"not {build.name}", "use strategy emulate")
    if build is not None and build.name == platform.name:
        return ToolchainProblem(f"host is {platform.name}: native")
    return None


def multiarch(platform: Platform) -> str:
    """Debian's multiarch tuple (i386 says i386-linux-gnu where the GNU triplet is i686-…), as
    `dpkg-architecture -qDEB_HOST_MULTIARCH` prints it. Raises nothing."""
    return _MULTIARCH.get(platform.debian_arch, platform.triplet)


def gnu_cpu(platform: Platform) -> str:
    """The CPU part of PLATFORM's GNU triplet ("aarch64" of aarch64-linux-gnu), as
    `dpkg-architecture -qDEB_HOST_GNU_CPU` prints it. Raises nothing."""
    return platform.triplet.split("-", 1)[0]


def toolchain_env(platform: Platform, build: Platform) -> dict[str, str]:
    """The variables a cross step for PLATFORM runs with, in a root of BUILD's architecture:
    CC, CXX, … as TRIPLET-tool; DEB_{BUILD,HOST}_{ARCH,GNU_CPU,GNU_TYPE,GNU_SYSTEM,MULTIARCH} as
    dpkg-architecture(1) sets them; CMAKE_TOOLCHAIN_FILE and MESON_CROSS_FILE. Raises nothing."""
    triplet = platform.triplet
    tools = {
        "CC": "gcc", "CXX": "g++", "CPP": "cpp", "AR": "ar", "AS": "as", "LD": "ld", "NM": "nm",
        "OBJCOPY": "objcopy", "OBJDUMP": "objdump", "RANLIB": "ranlib", "READELF": "readelf",
        "STRIP": "strip", "PKG_CONFIG": "pkg-config",
    }
    env = {key: f"{triplet}-{tool}" for key, tool in tools.items()}
    for side, plat in (("BUILD", build), ("HOST", platform)):
        env.update({
            f"DEB_{side}_ARCH": plat.debian_arch,
            f"DEB_{side}_GNU_CPU": gnu_cpu(plat),
            f"DEB_{side}_GNU_TYPE": plat.triplet,
            f"DEB_{side}_GNU_SYSTEM": plat.triplet.split("-", 1)[1],
            f"DEB_{side}_MULTIARCH": multiarch(plat),
        })
    env["CMAKE_TOOLCHAIN_FILE"] = f"/{CROSS_DIR}/{triplet}.cmake"  # read by CMake >= 3.21
    env["MESON_CROSS_FILE"] = f"/{CROSS_DIR}/{triplet}.meson"  # meson setup --cross-file "$MESON_CROSS_FILE"
    return env


def cross_files(platform: Platform) -> dict[str, bytes]:
    """Path in the root → bytes: the CMake toolchain file (what debhelper passes with -D) and
    the Meson cross file (what debcrossgen writes) for PLATFORM; UTF-8 text, paths without a
    leading "/". Meson's cpu_family/endian from its reference tables. Raises nothing."""
    triplet, cpu = platform.triplet, gnu_cpu(platform)
    family, endian = _MESON.get(platform.debian_arch, (cpu, "little"))
    cmake = (
        "# Written by xarch: a Debian multiarch cross build (as dh_auto_configure sets it).\n"
        "set(CMAKE_SYSTEM_NAME Linux)\n"
        f"set(CMAKE_SYSTEM_PROCESSOR {cpu})\n"
        f"set(CMAKE_C_COMPILER {triplet}-gcc)\n"
        f"set(CMAKE_CXX_COMPILER {triplet}-g++)\n"
        f"set(CMAKE_LIBRARY_ARCHITECTURE {multiarch(platform)})\n"
        f"set(PKG_CONFIG_EXECUTABLE /usr/bin/{triplet}-pkg-config)\n"
        f"set(CMAKE_INSTALL_LIBDIR lib/{multiarch(platform)})\n"
    )
    meson = (
        "# Written by xarch: a Debian multiarch cross build (as debcrossgen writes it).\n"
        "[binaries]\n"
        f"c = '{triplet}-gcc'\n"
        f"cpp = '{triplet}-g++'\n"
        f"ar = '{triplet}-ar'\n"
        f"strip = '{triplet}-strip'\n"
        f"pkgconfig = '{triplet}-pkg-config'\n"
        "\n[host_machine]\n"
        "system = 'linux'\n"
        f"cpu_family = '{family}'\n"
        f"cpu = '{cpu}'\n"
        f"endian = '{endian}'\n"
    )
    return {f"{CROSS_DIR}/{triplet}.cmake": cmake.encode(), f"{CROSS_DIR}/{triplet}.meson": meson.encode()}


def add_cross_files(tree: Tree, platform: Platform, epoch: int) -> None:
    """Put cross_files(PLATFORM) into TREE under /usr/share/xarch/cross, mode 0644, owner 0:0,
    mtime EPOCH (seconds since 1970), parent folders made. Raises nothing for a well-formed TREE."""
    for path, data in cross_files(platform).items():
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o644, 0, 0, epoch, data=data))
