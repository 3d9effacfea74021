"""Build steps in real rootfs directories: native, emulated (real QEMU), failures, network, cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.hostpath import path_without_cross_tools
from tests.support.needs import need_file
from tests.support.rootfs_helpers import PongServer, copy_rootfs
from xarch import platforms
from xarch.errors import XarchError
from xarch.run.cache import StepCache
from xarch.run.steps import (
    StepFailed,
    StepSpec,
    Strategy,
    StrategyUnavailable,
    choose_strategy,
    run_stage_steps,
)

EPOCH = 1700000000


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "source"
    src.mkdir()
    (src / "message.txt").write_text("hello from the source tree\n")
    return src


@pytest.fixture
def cache(tmp_path: Path) -> StepCache:
    return StepCache(tmp_path / "cache" / "steps")


def run(steps: list[StepSpec], rootfs: Path, platform: platforms.Platform, strategy: Strategy, source: Path,
        cache: StepCache, **kwargs: Any) -> list[str]:
    lines: list[str] = []
    run_stage_steps(steps, rootfs, platform, strategy, source, EPOCH, cache, lines.append, **kwargs)
    return lines


@pytest.mark.qemu
def test_emulated_arm64_step_sees_aarch64(arm64_emulation: platforms.Platform, arm64_rootfs: Path,
                                          source: Path, cache: StepCache) -> None:
    run([StepSpec("uname -m > /uname.txt && cp message.txt /copied.txt")], arm64_rootfs, arm64_emulation,
        "emulate", source, cache)
    assert (arm64_rootfs / "uname.txt").read_text() == "aarch64\n"
    assert (arm64_rootfs / "copied.txt").read_text() == "hello from the source tree\n"


def test_native_step_has_only_the_fixed_environment(host_rootfs: Path, source: Path,
                                                    cache: StepCache) -> None:
    host = platforms.host()
    run([StepSpec("env | sort > /env.txt; umask > /umask.txt; pwd > /pwd.txt")], host_rootfs, host, "native",
        source, cache)
    env = dict(line.split("=", 1) for line in (host_rootfs / "env.txt").read_text().splitlines())
    # The shell itself adds PWD, SHLVL and OLDPWD; everything else is xarch's fixed set.
    for shell_own in ("PWD", "SHLVL", "OLDPWD", "_"):
        env.pop(shell_own, None)
    assert env == {
        "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SOURCE_DATE_EPOCH": str(EPOCH), "TARGETARCH": host.architecture, "TARGETOS": "linux",
        "TARGETPLATFORM": host.oci, "TARGETVARIANT": host.variant or "",
    }
    assert (host_rootfs / "umask.txt").read_text().strip() == "0022"
    assert (host_rootfs / "pwd.txt").read_text().strip() == "/src"


def test_failing_step_reports_stage_step_exit_code_and_tail(host_rootfs: Path, source: Path,
                                                            cache: StepCache) -> None:
    steps = [
        StepSpec("echo first > /first.txt"),
        StepSpec("for i in $(seq 1 15); do echo line$i; done\necho oops >&2\nexit 3"),
    ]
    with pytest.raises(StepFailed) as caught:
        run(steps, host_rootfs, platforms.host(), "native", source, cache, stage="compile", log_lines=10)
    first = str(caught.value)
    assert first.splitlines() == [first]  # one line; the step's own output travels in details
    assert "stage 'compile' step 2" in first and "exit code 3" in first
    assert [line.strip() for line in caught.value.details] == [f"line{i}" for i in range(7, 16)] + ["oops"]
    assert isinstance(caught.value, XarchError)
    # Only the step that succeeded was cached; the failed one left nothing behind.
    assert len([p for p in cache.root.iterdir()]) == 1


def test_a_failing_command_in_the_middle_fails_the_step(host_rootfs: Path, source: Path,
                                                        cache: StepCache) -> None:
    with pytest.raises(StepFailed, match="exit code 1"):
        run([StepSpec("false\necho not reached > /reached.txt")], host_rootfs, platforms.host(), "native",
            source, cache)
    assert not (host_rootfs / "reached.txt").exists()


def test_step_without_network_cannot_reach_host(host_rootfs: Path, source: Path, cache: StepCache,
                                                 pong_server: PongServer) -> None:
    step = StepSpec(f"nc -w 3 127.0.0.1 {pong_server.port} </dev/null > /reply.txt")
    with pytest.raises(StepFailed):
        run([step], host_rootfs, platforms.host(), "native", source, cache)
    assert pong_server.connections == 0


def test_step_with_network_reaches_host(host_rootfs: Path, source: Path, cache: StepCache,
                                        pong_server: PongServer) -> None:
    step = StepSpec(f"nc -w 3 127.0.0.1 {pong_server.port} </dev/null > /reply.txt", network=True)
    run([step], host_rootfs, platforms.host(), "native", source, cache)
    assert (host_rootfs / "reply.txt").read_text() == "pong\n"
    assert pong_server.connections == 1


RANDOM_STEPS = [
    StepSpec("cp message.txt /message.txt"),
    # Random bytes: a rerun would write different ones, a cache hit restores the same.
    StepSpec("head -c 16 /dev/urandom | od -An -tx1 > /random.txt"),
]


def test_unchanged_rebuild_is_a_cache_hit(host_rootfs: Path, source: Path, cache: StepCache,
                                          tmp_path: Path) -> None:
    pristine = copy_rootfs(host_rootfs, tmp_path / "pristine")
    first = run(RANDOM_STEPS, host_rootfs, platforms.host(), "native", source, cache)
    second_root = copy_rootfs(pristine, tmp_path / "second")
    second = run(RANDOM_STEPS, second_root, platforms.host(), "native", source, cache)
    assert (second_root / "random.txt").read_text() == (host_rootfs / "random.txt").read_text()
    assert (second_root / "message.txt").read_text() == "hello from the source tree\n"
    assert [line for line in first if "cached" in line] == []
    assert len([line for line in second if line.endswith(": cached")]) == 2


def test_changed_input_reruns_its_step_and_every_later_one(host_rootfs: Path, source: Path, cache: StepCache,
                                                           tmp_path: Path) -> None:
    pristine = copy_rootfs(host_rootfs, tmp_path / "pristine")
    run(RANDOM_STEPS, host_rootfs, platforms.host(), "native", source, cache)
    (source / "message.txt").write_text("changed\n")
    second_root = copy_rootfs(pristine, tmp_path / "second")
    second = run(RANDOM_STEPS, second_root, platforms.host(), "native", source, cache)
    assert (second_root / "message.txt").read_text() == "changed\n"
    assert (second_root / "random.txt").read_text() != (host_rootfs / "random.txt").read_text()
    assert not any(line.endswith(": cached") for line in second)


def test_changed_later_step_keeps_earlier_hits(host_rootfs: Path, source: Path, cache: StepCache,
                                               tmp_path: Path) -> None:
    pristine = copy_rootfs(host_rootfs, tmp_path / "pristine")
    run(RANDOM_STEPS, host_rootfs, platforms.host(), "native", source, cache)
    changed = [RANDOM_STEPS[0], StepSpec("cat /message.txt > /again.txt")]
    second_root = copy_rootfs(pristine, tmp_path / "second")
    lines = run(changed, second_root, platforms.host(), "native", source, cache)
    assert [line for line in lines if line.endswith(": cached")] == ["build step 1/2: cached"]
    assert (second_root / "again.txt").read_text() == "hello from the source tree\n"
    assert not (second_root / "random.txt").exists()


def test_native_strategy_refuses_a_foreign_platform(host_rootfs: Path, source: Path, cache: StepCache,
                                                    arm64: platforms.Platform) -> None:
    with pytest.raises(StrategyUnavailable, match="native cannot build arm64"):
        run([StepSpec("true")], host_rootfs, arm64, "native", source, cache)


@pytest.mark.parametrize("host_name", ["amd64", "arm64"])
def test_choose_strategy_depends_on_the_host_architecture_only(host_name: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """native for the host's platform, else cross where the stage says so, else emulate;
    the same with the host's cross compilers on PATH or not (a cross root brings its own)."""
    host = platforms.get(host_name)
    other = platforms.get("arm64" if host_name == "amd64" else "amd64")
    choices = []
    for path in (os.environ.get("PATH", ""), path_without_cross_tools(tmp_path / "bin")):
        monkeypatch.setenv("PATH", path)
        choices.append([choose_strategy(host, True, host)[0], choose_strategy(other, True, host)[0],
                        choose_strategy(other, False, host)[0]])
    assert choices == [["native", "cross", "emulate"]] * 2


def test_cross_on_a_host_without_locked_cross_roots_names_the_fix(host_rootfs: Path, source: Path,
                                                                   cache: StepCache) -> None:
    ghost = platforms.Platform(
        name="ghost", os="linux", architecture="ghost", variant=None, debian_arch="ghost",
        triplet="ghost-linux-gnu", qemu="ghost-nonexistent", uname_machine="ghost",
        cross_root_packages=("gcc-ghost-linux-gnu",),
    )
    with pytest.raises(StrategyUnavailable) as caught:
        run([StepSpec("true")], host_rootfs, platforms.get("arm64"), "cross", source, cache, host=ghost)
    assert str(caught.value) == ("strategy cross cannot build arm64 on this ghost host: cross roots are "
                                 "locked for amd64, arm64 hosts, not ghost (use strategy emulate)")


def test_step_sees_a_fixed_hostname_not_the_hosts(host_rootfs: Path, source: Path, cache: StepCache) -> None:
    run([StepSpec("hostname > /hostname.txt")], host_rootfs, platforms.host(), "native", source, cache)
    assert (host_rootfs / "hostname.txt").read_text() == "xarch\n"


def test_network_step_gets_the_host_resolver_only_while_it_runs(host_rootfs: Path, source: Path,
                                                                cache: StepCache) -> None:
    need_file("/etc/resolv.conf", "a network step gets the host's resolver")
    (host_rootfs / "etc").mkdir()
    run([StepSpec("cat /etc/resolv.conf > /seen.txt", network=True)], host_rootfs, platforms.host(), "native",
        source, cache)
    assert (host_rootfs / "seen.txt").read_text() == Path("/etc/resolv.conf").read_text()
    assert not (host_rootfs / "etc" / "resolv.conf").exists()
