"""The cross strategy: steps run on the host's CPU with the platform's cross toolchain.

The target's -dev packages are unpacked (by the build pipeline) into a sysroot directory;
the step sees it, and its stage root, at fixed paths (xarch.run.chroot.CROSS_*), with the
usual cross variables set so autotools, CMake, Meson and plain Makefiles pick them up.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from xarch.errors import HostError
from xarch.platforms import Platform
from xarch.run.chroot import CROSS_HOME, CROSS_ROOT, CROSS_SYSROOT


class ToolchainMissing(HostError):
    """The platform's cross toolchain packages are not installed (exit 3)."""


@dataclass(frozen=True)
class ToolchainProblem:
    missing: tuple[str, ...]

    @property
    def why(self) -> str:
        return "cross toolchain not installed: " + ", ".join(self.missing)

    @property
    def fix(self) -> str:
        return "apt-get install " + " ".join(self.missing)


def installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    return result.returncode == 0 and result.stdout.strip() == "installed"


def toolchain_problem(platform: Platform) -> ToolchainProblem | None:
    """What is missing to cross-build for PLATFORM, or None when all is installed."""
    missing = tuple(pkg for pkg in platform.cross_packages if not installed(pkg))
    if not platform.cross_packages:
        return ToolchainProblem(missing=("(no cross.packages in platforms/" + platform.slug + ".yaml)",))
    if shutil.which(f"{platform.triplet}-gcc") is None and not missing:
        missing = (f"gcc-{platform.triplet}",)
    return ToolchainProblem(missing) if missing else None


def require_toolchain(platform: Platform) -> None:
    problem = toolchain_problem(platform)
    if problem:
        raise ToolchainMissing(f"cannot cross-build for {platform.name}: {problem.why} (fix: {problem.fix})")


@cache
def multiarch(platform: Platform) -> str:
    """Debian's multiarch tuple (i386 says i386-linux-gnu where the GNU triplet is i686-…)."""
    if shutil.which("dpkg-architecture"):
        result = subprocess.run(
            ["dpkg-architecture", f"-a{platform.debian_arch}", "-qDEB_HOST_MULTIARCH"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return platform.triplet


def toolchain_env(platform: Platform, sysroot: PurePosixPath = CROSS_SYSROOT) -> dict[str, str]:
    """The variables a cross step runs with (paths as the step sees them)."""
    triplet = platform.triplet
    tuple_ = multiarch(platform)
    include = f"-isystem {sysroot}/usr/include/{tuple_} -isystem {sysroot}/usr/include"
    libdirs = [f"{sysroot}/usr/lib/{tuple_}", f"{sysroot}/lib/{tuple_}"]
    return {
        "CC": f"{triplet}-gcc",
        "CXX": f"{triplet}-g++",
        "AR": f"{triplet}-ar",
        "RANLIB": f"{triplet}-ranlib",
        "STRIP": f"{triplet}-strip",
        "LD": f"{triplet}-ld",
        "CPPFLAGS": include,
        "LDFLAGS": " ".join(f"-L{d} -Wl,-rpath-link,{d}" for d in libdirs),
        "PKG_CONFIG_LIBDIR": f"{sysroot}/usr/lib/{tuple_}/pkgconfig:{sysroot}/usr/share/pkgconfig",
        "PKG_CONFIG_SYSROOT_DIR": str(sysroot),
        "DEB_HOST_ARCH": platform.debian_arch,
        "DEB_HOST_GNU_TYPE": triplet,
        "DEB_HOST_MULTIARCH": tuple_,
        "XARCH_SYSROOT": str(sysroot),
        # `make install` (and most build systems) then install into the stage root.
        "DESTDIR": str(CROSS_ROOT),
        "HOME": str(CROSS_HOME),
    }
