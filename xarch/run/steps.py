"""Run a stage's `run:` steps with one strategy, a fixed environment and the step cache."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xarch.errors import XarchError
from xarch.platforms import Platform
from xarch.run import cross, qemu
from xarch.run.cache import Snapshot, StepCache, step_key, tree_digest
from xarch.run.chroot import (
    CROSS_ROOT,
    CROSS_SYSROOT,
    IsolationUnavailable,
    RunResult,
    isolation_problem,
    run_in_rootfs,
    run_on_host,
)
from xarch.run.sandbox import hand_over

Strategy = Literal["native", "cross", "emulate"]
STRATEGIES: tuple[Strategy, ...] = ("native", "cross", "emulate")

# The recipe's source tree is copied here inside the stage root (/src for native and
# emulate; for cross the stage root itself is at chroot.CROSS_ROOT, so the same files
# are at /mnt/xarch/root/src). A copy, not a bind: a step writing into its source tree
# must not change the user's checkout. Its digest is part of every step's cache key.
SOURCE_DIR_IN_ROOT = "src"
FIXED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StepFailed(XarchError):
    """A build step exited non-zero. First line: what failed; then the step's last output lines."""


class StrategyUnavailable(XarchError):
    """No strategy can run a stage's steps for a platform on this host."""


@dataclass(frozen=True)
class StepSpec:
    run: str  # shell text, run by the stage's /bin/sh with `-e`
    network: bool = False


def fixed_env(platform: Platform, epoch: int) -> dict[str, str]:
    """Everything a step sees in its environment; nothing comes from the host's."""
    return {
        "TARGETARCH": platform.architecture,
        "TARGETPLATFORM": platform.oci,
        "TARGETVARIANT": platform.variant or "",
        "TARGETOS": platform.os,
        "SOURCE_DATE_EPOCH": str(epoch),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/root",
        "PATH": FIXED_PATH,
    }


def choose_strategy(platform: Platform, stage_can_cross: bool, host: Platform) -> tuple[Strategy, str]:
    """`strategy: auto`: native, else cross where the stage allows it, else emulate."""
    isolation = isolation_problem()
    if isolation:
        raise IsolationUnavailable(f"no way to run build steps on this host: {isolation}")
    if platform.name == host.name:
        return "native", f"host is {host.name}"
    toolchain = cross.toolchain_problem(platform)
    if stage_can_cross and toolchain is None:
        return "cross", f"{platform.triplet} toolchain installed"
    emulation = qemu.emulation_problem(platform)
    if emulation is None:
        if not stage_can_cross:
            return "emulate", "QEMU via binfmt_misc (the stage does not say it can cross-build)"
        return "emulate", f"QEMU via binfmt_misc ({toolchain.why if toolchain else ''})"
    reasons = [emulation.why]
    fixes = [emulation.fix] if emulation.fix else []
    if stage_can_cross and toolchain is not None:
        reasons.insert(0, toolchain.why)
        fixes.insert(0, toolchain.fix)
    fix = f" (fix: {' or '.join(fixes)})" if fixes else ""
    raise StrategyUnavailable(
        f"no way to run steps for {platform.name} on this {host.name} host: {'; '.join(reasons)}{fix}"
    )


def place_source(source_dir: Path, rootfs: Path) -> None:
    target = rootfs / SOURCE_DIR_IN_ROOT
    if target.exists() or target.is_symlink():
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    if source_dir.exists():
        shutil.copytree(source_dir, target, symlinks=True)
    else:
        target.mkdir()


def _run_one(
    step: StepSpec,
    rootfs: Path,
    platform: Platform,
    strategy: Strategy,
    env: Mapping[str, str],
    sysroot: Path | None,
    log: Callable[[str], None],
) -> RunResult:
    cwd = "/" + SOURCE_DIR_IN_ROOT
    if strategy == "native":
        return run_in_rootfs(rootfs, step.run, env, cwd=cwd, network=step.network, log=log)
    if strategy == "emulate":
        return qemu.run_emulated(platform, rootfs, step.run, env, cwd=cwd, network=step.network, log=log)
    binds = [(rootfs, CROSS_ROOT)]
    if sysroot is not None:
        binds.append((sysroot, CROSS_SYSROOT))
    cross_env = {**env, **cross.toolchain_env(platform)}
    return run_on_host(
        step.run, cross_env, binds=binds, cwd=CROSS_ROOT / SOURCE_DIR_IN_ROOT, network=step.network, log=log
    )


def _check_strategy(platform: Platform, strategy: Strategy, host: Platform) -> None:
    if strategy == "native" and platform.name != host.name:
        raise StrategyUnavailable(
            f"strategy native cannot build {platform.name} on a {host.name} host (use cross or emulate)"
        )
    if strategy == "cross":
        cross.require_toolchain(platform)
    if strategy == "emulate":
        qemu.require_emulation(platform)


def run_stage_steps(
    steps: Sequence[StepSpec],
    rootfs: Path,
    platform: Platform,
    strategy: Strategy,
    source_dir: Path,
    epoch: int,
    cache: StepCache,
    log: Callable[[str], None],
    *,
    stage: str = "build",
    inputs: Mapping[str, Any] | None = None,
    sysroot: Path | None = None,
    host: Platform | None = None,
) -> None:
    """Run STEPS of STAGE in ROOTFS (the stage root, of PLATFORM's arch unless cross).

    INPUTS: what the pipeline knows changes the stage (lock entries, file digests,
    sysroot digest), JSON-able; part of every step's cache key. A step whose key is
    cached is skipped and its recorded changes are replayed onto ROOTFS instead, so ROOTFS
    must start as the same root every time (what INPUTS describe), plus the source copy.
    On failure raises StepFailed; ROOTFS is then half-built and must be discarded.
    """
    from xarch import platforms

    _check_strategy(platform, strategy, host or platforms.host())
    env = fixed_env(platform, epoch)
    source_digest = tree_digest(source_dir)
    place_source(source_dir, rootfs)
    hand_over(rootfs)  # before the first snapshot: the owner change is not a step's doing
    previous: str | None = None
    for number, step in enumerate(steps, start=1):
        key = step_key(
            inputs=inputs or {}, source_digest=source_digest, step=step.run, network=step.network,
            previous=previous, platform=platform.oci, strategy=strategy, env=env,
        )
        previous = key
        label = f"{stage} step {number}/{len(steps)}"
        if cache.has(key):
            log(f"{label}: cached")
            cache.replay(key, rootfs)
            continue
        log(f"{label}: running ({strategy})")
        before = Snapshot.of(rootfs)
        result = _run_one(step, rootfs, platform, strategy, env, sysroot, log)
        if result.exit_code != 0:
            first = step.run.strip().splitlines()[0] if step.run.strip() else ""
            raise StepFailed(
                f"stage {stage!r} step {number} (`{first}`) failed with exit code {result.exit_code}"
                + "".join("\n  " + line for line in result.tail)
            )
        meta = {"stage": stage, "step": number, "run": step.run, "strategy": strategy}
        cache.save(key, rootfs, before, meta)
