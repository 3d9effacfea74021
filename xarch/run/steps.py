"""Run a stage's `run:` steps with one strategy, a fixed environment and the step cache."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xarch.errors import BuildError, HostError
from xarch.platforms import Platform
from xarch.run import cross, qemu
from xarch.run.cache import Snapshot, StepCache, step_key, tree_digest
from xarch.run.chroot import IsolationUnavailable, RunResult, isolation_problem, run_in_rootfs
from xarch.run.sandbox import hand_over

Strategy = Literal["native", "cross", "emulate"]
STRATEGIES: tuple[Strategy, ...] = ("native", "cross", "emulate")

# The recipe's source tree is copied here inside the stage root: /src in every strategy.
# A copy, not a bind: a step writing into its source tree must not change the user's
# checkout. Its digest is part of every step's cache key.
SOURCE_DIR_IN_ROOT = "src"
FIXED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StepFailed(BuildError):
    """A build step exited non-zero: the message says which; `details` holds its last output lines."""


class StrategyUnavailable(HostError):
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
    """`strategy: auto`: native when PLATFORM is the host's, else cross when the stage says
    `cross: true`, else emulate. Only the host's architecture counts, never its installed
    tools (a cross root brings its own), so every host of one architecture chooses alike."""
    isolation = isolation_problem()
    if isolation:
        raise IsolationUnavailable(f"no way to run build steps on this host: {isolation}")
    if platform.name == host.name:
        return "native", f"host is {host.name}"
    if stage_can_cross:
        return "cross", f"cross: true; a {host.name} root with the locked {platform.triplet} toolchain"
    return "emulate", f"QEMU (host is {host.name}; the stage does not say cross: true)"


def place_source(source_dir: Path, rootfs: Path) -> None:
    target = rootfs / SOURCE_DIR_IN_ROOT
    if os.path.lexists(target):
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
    log: Callable[[str], None],
) -> RunResult:
    cwd = "/" + SOURCE_DIR_IN_ROOT
    if strategy == "emulate":
        return qemu.run_emulated(platform, rootfs, step.run, env, cwd=cwd, network=step.network, log=log)
    # native, and cross: the root is of the host's architecture either way.
    return run_in_rootfs(rootfs, step.run, env, cwd=cwd, network=step.network, log=log)


def _check_strategy(platform: Platform, strategy: Strategy, host: Platform) -> None:
    if strategy == "native" and platform.name != host.name:
        raise StrategyUnavailable(
            f"strategy native cannot build {platform.name} on a {host.name} host (use cross or emulate)"
        )
    if strategy == "cross":
        problem = cross.toolchain_problem(platform, host)
        if problem:
            fix = f" ({problem.fix})" if problem.fix else ""
            raise StrategyUnavailable(f"strategy cross cannot build {platform.name} on this {host.name} "
                                      f"host: {problem.why}{fix}")
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
    host: Platform | None = None,
) -> None:
    """Run STEPS of STAGE in ROOTFS (the stage root: of PLATFORM's arch, or for cross a
    root of HOST's arch with PLATFORM's toolchain and packages, see xarch.run.cross).

    INPUTS: what the pipeline knows changes the stage (lock entries, file digests),
    JSON-able; part of every step's cache key. A step whose key is
    cached is skipped and its recorded changes are replayed onto ROOTFS instead, so ROOTFS
    must start as the same root every time (what INPUTS describe), plus the source copy.
    On failure raises StepFailed; ROOTFS is then half-built and must be discarded.
    """
    from xarch import platforms

    host = host or platforms.host()
    _check_strategy(platform, strategy, host)
    env = fixed_env(platform, epoch)
    if strategy == "cross":
        env.update(cross.toolchain_env(platform, host))
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
        if cache.usable(key):  # checked against its recorded sha256; a damaged entry is rerun
            log(f"{label}: cached")
            cache.replay(key, rootfs)
            continue
        log(f"{label}: running ({strategy})")
        before = Snapshot.of(rootfs)
        result = _run_one(step, rootfs, platform, strategy, env, log)
        if result.exit_code != 0:
            first = step.run.strip().splitlines()[0] if step.run.strip() else ""
            raise StepFailed(
                f"stage {stage!r} step {number} (`{first}`) failed with exit code {result.exit_code}",
                details=result.tail,
            )
        meta = {"stage": stage, "step": number, "run": step.run, "strategy": strategy}
        cache.save(key, rootfs, before, meta)
