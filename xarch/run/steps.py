"""Run a stage's `run:` steps with one strategy, a fixed environment and the step cache."""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xarch.errors import BuildError, HostError
from xarch.platforms import Platform
from xarch.run import cross, qemu
from xarch.run.cache import Snapshot, StepCache, folder_digest, step_key
from xarch.run.chroot import IsolationUnavailable, RunResult, isolation_problem, run_in_rootfs
from xarch.run.options import DEFAULT_LOG_LINES, Secret, mask
from xarch.run.sandbox import Bind, hand_over
from xarch.run.secretmount import ca_env, step_secrets

Strategy = Literal["native", "cross", "emulate"]

# The recipe's source tree is copied here inside the stage root: /src in every strategy.
# A copy, not a bind: a step writing into its source tree must not change the user's
# checkout. Its digest is part of every step's cache key.
SOURCE_DIR_IN_ROOT = "src"
FIXED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StepFailed(BuildError):
    """A build step exited non-zero (exit 2): the message says which; `details` holds its last
    output lines."""


class StrategyUnavailable(HostError):
    """No strategy can run a stage's steps for a platform on this host (exit 3)."""


@dataclass(frozen=True)
class StepSpec:
    """One `run:` step of a stage as the runner takes it (the recipe's StepModel, flattened):
    its shell text, whether it gets the network, its own env, and the secret ids it mounts."""

    run: str  # shell text, run by the stage's /bin/sh with `-e`
    network: bool = False
    env: tuple[tuple[str, str], ...] = ()  # the step's `env:`, over the build arguments
    secrets: tuple[str, ...] = ()  # ids mounted at /run/secrets/ID (xarch.run.secretmount)
    ca_certificates: tuple[str, ...] = ()  # ids of secrets holding extra trusted CAs (PEM)
    where: str = ""  # the step in the recipe, e.g. stages.build.steps[1], for hints


# Output of a step that could not reach the network: glibc, musl, Python, curl, wget, Node, Go, apt.
OFFLINE_PATTERNS = (
    "temporary failure in name resolution", "name or service not known", "could not resolve host",
    "name does not resolve", "bad address", "network is unreachable", "connection refused",
    "no address associated with hostname", "nodename nor servname", "getaddrinfo", "eai_again",
    "enotfound", "econnrefused", "enetunreach", "failed to establish a new connection", "dial tcp",
    "could not resolve", "unable to resolve host",
)


def looks_offline(lines: Sequence[str]) -> bool:
    """Whether a failed step's output reads like a missing network (name resolution, refused):
    any of OFFLINE_PATTERNS in LINES, case-insensitively. Raises nothing."""
    text = "\n".join(lines).lower()
    return any(pattern in text for pattern in OFFLINE_PATTERNS)


def fixed_env(platform: Platform, epoch: int) -> dict[str, str]:
    """Everything a step sees in its environment; nothing comes from the host's: BuildKit's
    TARGET* platform variables, SOURCE_DATE_EPOCH = EPOCH (seconds since 1970, per
    reproducible-builds.org), C.UTF-8, TZ=UTC, HOME=/root and a fixed PATH. Raises nothing."""
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
    tools (a cross root brings its own), so every host of one architecture chooses alike.
    Returns (strategy, why). Raises IsolationUnavailable (SandboxUnavailable, exit 3) when this
    host cannot sandbox steps at all."""
    isolation = isolation_problem()
    if isolation:
        raise IsolationUnavailable(f"no way to run build steps on this host: {isolation}")
    if platform.name == host.name:
        return "native", f"host is {host.name}"
    if stage_can_cross:
        return "cross", f"cross: true; a {host.name} root with the locked {platform.triplet} toolchain"
    return "emulate", f"QEMU (host is {host.name}; the stage does not say cross: true)"


def place_source(source_dir: Path, rootfs: Path) -> None:
    """Copy SOURCE_DIR to ROOTFS/src (replacing what is there; symlinks kept as links), or
    make an empty /src when SOURCE_DIR does not exist. OSError (e.g. ENOSPC) propagates."""
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
    binds: Sequence[Bind] = (),
) -> RunResult:
    cwd = "/" + SOURCE_DIR_IN_ROOT
    if strategy == "emulate":
        return qemu.run_emulated(platform, rootfs, step.run, env, cwd=cwd, network=step.network, log=log,
                                 binds=binds)
    # native, and cross: the root is of the host's architecture either way.
    return run_in_rootfs(rootfs, step.run, env, cwd=cwd, network=step.network, log=log, binds=binds)


def check_strategy(platform: Platform, strategy: Strategy, host: Platform) -> None:
    """Raise StrategyUnavailable (or EmulationUnavailable), both exit 3, when STRATEGY cannot build
    PLATFORM on HOST: native for a foreign platform, cross when cross.toolchain_problem names
    one, emulate without qemu-user-static and a binfmt_misc entry."""
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
    args: Mapping[str, str] | None = None,
    secrets: Mapping[str, Secret] | None = None,
    log_lines: int = DEFAULT_LOG_LINES,
    status: Callable[[str], None] | None = None,
) -> None:
    """Run STEPS of STAGE in ROOTFS (the stage root: of PLATFORM's arch, or for cross a
    root of HOST's arch with PLATFORM's toolchain and packages, see xarch.run.cross).

    INPUTS: what the pipeline knows changes the stage (lock entries, file digests),
    JSON-able; part of every step's cache key. A step whose key is
    cached is skipped and its recorded changes are replayed onto ROOTFS instead, so ROOTFS
    must start as the same root every time (what INPUTS describe), plus the source copy.
    On failure raises StepFailed (its details: the last LOG_LINES output lines, and a hint
    when the output reads like a missing network in a step without `network: true`); ROOTFS
    is then half-built and must be discarded.

    ARGS (the recipe's build arguments) and each step's `env:` are in its environment and its
    key. SECRETS (id → Secret) are mounted for the steps that list them and are in no key;
    every secret string is replaced by *** in what reaches LOG and the failure's details.
    STATUS gets "step N/M: running|cached|done" lines (default: LOG).
    Also raises BuildError (exit 2) for a step listing a secret not in SECRETS,
    StrategyUnavailable/EmulationUnavailable/SandboxUnavailable (exit 3) as check_strategy.
    """
    from xarch import platforms

    host = host or platforms.host()
    check_strategy(platform, strategy, host)
    base_env = fixed_env(platform, epoch)
    if strategy == "cross":
        base_env.update(cross.toolchain_env(platform, host))
    base_env.update(args or {})
    secrets = secrets or {}
    masks = sorted({m for s in secrets.values() for m in s.masks()}, key=len, reverse=True)
    status = status or log
    for number, step in enumerate(steps, start=1):
        missing = [i for i in (*step.secrets, *step.ca_certificates) if i not in secrets]
        if missing:  # the build command checks this up front (xarch.run.options.resolve); others may not
            where = step.where or f"stages.{stage}.steps[{number - 1}]"
            raise BuildError(f"{where} lists secret {missing[0]!r}, which this command was not given "
                             f"(xarch build --secret id={missing[0]},src=FILE)")
    source_digest = folder_digest(source_dir)
    place_source(source_dir, rootfs)
    hand_over(rootfs)  # before the first snapshot: the owner change is not a step's doing
    previous: str | None = None
    for number, step in enumerate(steps, start=1):
        env = {**base_env, **dict(step.env)}
        if step.ca_certificates:
            env.update(ca_env())
        key_text = step.run
        if step.secrets or step.ca_certificates:
            # Which secrets are mounted changes what the step sees; their values never enter a key.
            key_text += "\0secrets:" + ",".join(step.secrets) + "\0ca:" + ",".join(step.ca_certificates)
        key = step_key(
            inputs=inputs or {}, source_digest=source_digest, step=key_text, network=step.network,
            previous=previous, platform=platform.oci, strategy=strategy, env=env,
        )
        previous = key
        label = f"{stage} step {number}/{len(steps)}"
        if cache.usable(key):  # checked against its recorded sha256; a damaged entry is rerun
            status(f"{label}: cached")
            cache.replay(key, rootfs)
            continue
        status(f"{label}: running ({strategy})")
        tail: deque[str] = deque(maxlen=log_lines)

        def output(line: str, tail: deque[str] = tail) -> None:
            line = mask(line, masks)
            tail.append(line)
            log(line)

        before = Snapshot.of(rootfs)
        started = time.monotonic()
        with step_secrets(rootfs, secrets, step.secrets, step.ca_certificates) as mounts:
            result = _run_one(step, rootfs, platform, strategy, env, output, mounts.binds)
        if result.exit_code != 0:
            first = step.run.strip().splitlines()[0] if step.run.strip() else ""
            failed = StepFailed(
                mask(f"stage {stage!r} step {number} (`{first}`) failed with exit code {result.exit_code}",
                     masks),
                details=tuple(tail),
            )
            if not step.network and looks_offline(tail):
                where = step.where or f"stages.{stage}.steps[{number - 1}]"
                failed.hint = (f"the output reads like a missing network; this step runs without one: "
                               f"add `network: true` to {where} if it needs it")
            raise failed
        status(f"{label}: done in {time.monotonic() - started:.1f} s")
        meta = {"stage": stage, "step": number, "run": step.run, "strategy": strategy}
        cache.save(key, rootfs, before, meta)
