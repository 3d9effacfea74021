"""Which strategies can run build steps for each platform on this host now, and why not."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from xarch import platforms
from xarch.platforms import Platform
from xarch.run import cross, qemu
from xarch.run.chroot import isolation_problem


@dataclass(frozen=True)
class StrategyCheck:
    """One strategy ("native", "cross", "emulate") for one platform: works (True/False, None
    when not applicable), why not (one phrase) and the fix to suggest ("" when none)."""

    strategy: str
    works: bool | None  # None: not applicable (cross or emulation of the host's own arch)
    why: str = ""
    fix: str = ""


@dataclass(frozen=True)
class PlatformRow:
    """One platform's line of `xarch platforms`: its name ("arm64"), OCI platform
    ("linux/arm64") and the checks of native, cross and emulate, in that order."""

    platform: str
    oci: str
    checks: tuple[StrategyCheck, ...]

    def to_json(self) -> dict[str, object]:
        """{"platform", "oci", "strategies": [StrategyCheck as a dict]}, the `--json` shape."""
        return {"platform": self.platform, "oci": self.oci, "strategies": [asdict(c) for c in self.checks]}


def check_platform(platform: Platform, host: Platform) -> PlatformRow:
    """Which strategies can run PLATFORM's steps on HOST now: native only for the host's own
    platform; cross needs cross data (cross.toolchain_problem) and the sandbox; emulate needs
    qemu-user-static with a binfmt_misc entry and the sandbox. Only reads; raises no XarchError
    (OSError from an unreadable /proc/sys/fs/binfmt_misc file propagates)."""
    isolation = isolation_problem()
    checks: list[StrategyCheck] = []
    if platform.name == host.name:
        native_works = isolation is None
        checks.append(StrategyCheck("native", native_works, isolation or ""))
        checks.append(StrategyCheck("cross", None, "not needed: host is this platform"))
        checks.append(StrategyCheck("emulate", None, "not needed: host is this platform"))
    else:
        checks.append(StrategyCheck("native", False, f"host is {host.name}"))
        # The cross root comes from the archive (xarch lock), so nothing on this host counts.
        toolchain = cross.toolchain_problem(platform, host)
        if toolchain is not None:
            checks.append(StrategyCheck("cross", False, toolchain.why, toolchain.fix))
        elif isolation is not None:
            checks.append(StrategyCheck("cross", False, isolation))
        else:
            checks.append(StrategyCheck("cross", True))
        emulation = qemu.emulation_problem(platform)
        if emulation is not None:
            checks.append(StrategyCheck("emulate", False, emulation.why, emulation.fix))
        elif isolation is not None:
            checks.append(StrategyCheck("emulate", False, isolation))
        else:
            checks.append(StrategyCheck("emulate", True))
    return PlatformRow(platform=str(platform.name), oci=platform.oci, checks=tuple(checks))


def host_matrix(host: Platform | None = None) -> list[PlatformRow]:
    """One row per platform in platforms/, in name order, checked against HOST (default: this
    machine, platforms.host()); raises as check_platform."""
    host = host or platforms.host()
    rows = [check_platform(plat, host) for plat in platforms.all_platforms().values()]
    return sorted(rows, key=lambda row: row.platform)
