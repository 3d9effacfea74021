"""The cross strategy with the real aarch64-linux-gnu toolchain; its output runs under real QEMU."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.support.needs import need_root
from tests.support.rootfs_helpers import PongServer, unavailable
from xarch import platforms
from xarch.run import cross, qemu
from xarch.run.cache import StepCache
from xarch.run.chroot import CROSS_ROOT, host_command
from xarch.run.steps import StepFailed, StepSpec, fixed_env, run_stage_steps

pytest_plugins = ["tests.support.rootfs"]

EPOCH = 1700000000
HELLO_C = r"""
#include <stdio.h>
#include "xarch_test.h"
int main(void) { printf("hello from %s, %s\n", XARCH_TEST_GREETING, __FILE__); return 0; }
"""
EM_AARCH64 = 183  # ELF e_machine


@pytest.fixture
def toolchain(arm64: platforms.Platform) -> platforms.Platform:
    need_tool("aarch64-linux-gnu-gcc")
    problem = cross.toolchain_problem(arm64)
    if problem:
        unavailable(f"{problem.why} (fix: {problem.fix})")
    return arm64


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "source"
    src.mkdir()
    (src / "hello.c").write_text(HELLO_C)
    return src


@pytest.fixture
def sysroot(tmp_path: Path) -> Path:
    """A sysroot as the pipeline makes one: the target's -dev files under usr/include/<multiarch>."""
    root = tmp_path / "sysroot"
    include = root / "usr" / "include" / "aarch64-linux-gnu"
    include.mkdir(parents=True)
    (include / "xarch_test.h").write_text('#define XARCH_TEST_GREETING "the sysroot"\n')
    return root


def run(steps, stage_root, platform, source, cache, sysroot=None):
    lines: list[str] = []
    run_stage_steps(steps, stage_root, platform, "cross", source, EPOCH, cache, lines.append, sysroot=sysroot)
    return lines


COMPILE = StepSpec('mkdir -p "$DESTDIR/out" && $CC $CPPFLAGS -static -O2 -o "$DESTDIR/out/hello" hello.c')


@pytest.mark.qemu
def test_cross_compiled_binary_runs_under_qemu(toolchain, arm64_emulation, source: Path, sysroot: Path,
                                              tmp_path: Path) -> None:
    stage_root = tmp_path / "stage"
    stage_root.mkdir()
    run([COMPILE], stage_root, toolchain, source, StepCache(tmp_path / "cache"), sysroot)
    binary = stage_root / "out" / "hello"
    header = binary.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
    # The source sits at a fixed path whatever the temp dir: __FILE__ shows it.
    assert qemu.run_binary(toolchain, binary) == "hello from the sysroot, hello.c\n"


@pytest.mark.qemu
def test_cross_compiled_binary_runs_in_an_emulated_arm64_rootfs(
    toolchain, arm64_emulation, arm64_rootfs: Path, source: Path, sysroot: Path, tmp_path: Path
) -> None:
    stage_root = tmp_path / "stage"
    stage_root.mkdir()
    run([COMPILE], stage_root, toolchain, source, StepCache(tmp_path / "cache"), sysroot)
    (arm64_rootfs / "hello").write_bytes((stage_root / "out" / "hello").read_bytes())
    (arm64_rootfs / "hello").chmod(0o755)
    run_stage_steps([StepSpec("/hello > /message.txt")], arm64_rootfs, arm64_emulation, "emulate", source,
                    EPOCH, StepCache(tmp_path / "cache2"), lambda line: None)
    assert (arm64_rootfs / "message.txt").read_text() == "hello from the sysroot, hello.c\n"


def test_cross_step_sees_toolchain_env_and_fixed_paths(toolchain, source: Path, sysroot: Path,
                                                      tmp_path: Path) -> None:
    stage_root = tmp_path / "stage"
    stage_root.mkdir()
    step = StepSpec(
        'env | sort > "$DESTDIR/env.txt"; pwd > "$DESTDIR/pwd.txt";'
        ' ls "$XARCH_SYSROOT/usr/include" > "$DESTDIR/sysroot.txt"'
    )
    run([step], stage_root, toolchain, source, StepCache(tmp_path / "cache"), sysroot)
    env = dict(line.split("=", 1) for line in (stage_root / "env.txt").read_text().splitlines())
    assert env["CC"] == "aarch64-linux-gnu-gcc" and env["CXX"] == "aarch64-linux-gnu-g++"
    assert env["AR"] == "aarch64-linux-gnu-ar" and env["STRIP"] == "aarch64-linux-gnu-strip"
    assert env["DEB_HOST_MULTIARCH"] == "aarch64-linux-gnu"
    assert env["PKG_CONFIG_LIBDIR"].startswith("/mnt/xarch/sysroot/usr/lib/aarch64-linux-gnu/pkgconfig")
    assert env["TARGETPLATFORM"] == "linux/arm64" and env["SOURCE_DATE_EPOCH"] == str(EPOCH)
    assert env["DESTDIR"] == "/mnt/xarch/root"
    assert (stage_root / "pwd.txt").read_text() == "/mnt/xarch/root/src\n"
    assert (stage_root / "sysroot.txt").read_text() == "aarch64-linux-gnu\n"


def test_cross_cache_hit_skips_the_step_and_a_change_reruns_it(toolchain, source: Path,
                                                               tmp_path: Path) -> None:
    # The counter lives outside the stage root: only a real run can append to it.
    counter = tmp_path / "counter"
    counter.write_text("")
    steps = [StepSpec(f"echo run >> {counter} && cp hello.c \"$DESTDIR/copy.c\"")]
    cache = StepCache(tmp_path / "cache")
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        run(steps, tmp_path / name, toolchain, source, cache)
    assert counter.read_text() == "run\n"
    assert (tmp_path / "second" / "copy.c").read_text() == HELLO_C
    (source / "hello.c").write_text(HELLO_C + "/* changed */\n")
    (tmp_path / "third").mkdir()
    run(steps, tmp_path / "third", toolchain, source, cache)
    assert counter.read_text() == "run\nrun\n"


def test_cross_step_has_no_network_unless_asked(toolchain, source: Path, tmp_path: Path,
                                               pong_server: PongServer) -> None:
    busybox = need_tool("busybox")  # its nc: the host may have no other
    fetch = f'{busybox} nc -w 3 127.0.0.1 {pong_server.port} </dev/null > "$DESTDIR/reply.txt"'
    (tmp_path / "offline").mkdir()
    with pytest.raises(StepFailed):
        run([StepSpec(fetch)], tmp_path / "offline", toolchain, source, StepCache(tmp_path / "c1"))
    assert pong_server.connections == 0
    (tmp_path / "online").mkdir()
    run([StepSpec(fetch, network=True)], tmp_path / "online", toolchain, source, StepCache(tmp_path / "c2"))
    assert (tmp_path / "online" / "reply.txt").read_text() == "pong\n"


def test_missing_toolchain_names_the_install_command() -> None:
    ghost = platforms.Platform(
        name="ghost", os="linux", architecture="ghost", variant=None, debian_arch="ghost",
        triplet="ghost-linux-gnu", qemu="ghost", uname_machine="ghost",
        cross_packages=("gcc-ghost-linux-gnu", "libc6-dev-ghost-cross"),
    )
    with pytest.raises(cross.ToolchainMissing) as caught:
        cross.require_toolchain(ghost)
    assert str(caught.value) == (
        "cannot cross-build for ghost: cross toolchain not installed: gcc-ghost-linux-gnu, "
        "libc6-dev-ghost-cross (fix: apt-get install gcc-ghost-linux-gnu libc6-dev-ghost-cross)"
    )


@pytest.mark.qemu
def test_dynamic_cross_binary_runs_with_the_cross_libc_as_sysroot(toolchain, arm64_emulation, source: Path,
                                                                  sysroot: Path, tmp_path: Path) -> None:
    stage_root = tmp_path / "stage"
    stage_root.mkdir()
    dynamic = StepSpec('mkdir -p "$DESTDIR/out" && $CC $CPPFLAGS -O2 -o "$DESTDIR/out/hello" hello.c')
    run([dynamic], stage_root, toolchain, source, StepCache(tmp_path / "cache"), sysroot)
    binary = stage_root / "out" / "hello"
    with pytest.raises(qemu.EmulatedRunFailed, match="ld-linux-aarch64.so.1"):
        qemu.run_binary(toolchain, binary)
    cross_libc = Path("/usr/aarch64-linux-gnu")
    assert qemu.run_binary(toolchain, binary, sysroot=cross_libc) == "hello from the sysroot, hello.c\n"


def test_rootless_cross_compile_as_an_unprivileged_user(toolchain, source: Path) -> None:
    """The exact command xarch runs for a cross step without root, started as `nobody`."""
    need_root("to become another user; as non-root the default route is the rootless one")
    setpriv = need_tool("setpriv")
    base = Path(tempfile.mkdtemp(prefix="xarch-rootless-cross-"))  # pytest's tmp dirs are root-only
    try:
        stage_root = base / "stage"
        shutil.copytree(source, stage_root / "src")
        (stage_root / "src" / "xarch_test.h").write_text('#define XARCH_TEST_GREETING "nobody"\n')
        subprocess.run(["chown", "-R", "65534:65534", str(base)], check=True)
        env = {**fixed_env(toolchain, EPOCH), **cross.toolchain_env(toolchain)}
        compile_step = 'mkdir -p "$DESTDIR/out" && $CC -static -O2 -o "$DESTDIR/out/hello" hello.c'
        command = host_command(compile_step, binds=[(stage_root, CROSS_ROOT)], cwd=CROSS_ROOT / "src",
                               rootless=True)
        completed = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
             *(f"{key}={value}" for key, value in env.items()), *command],
            capture_output=True, text=True,
        )
        if completed.returncode != 0 and "Operation not permitted" in completed.stderr:
            unavailable(f"user namespaces are disabled for unprivileged users: {completed.stderr.strip()}")
        assert completed.returncode == 0, completed.stderr
        binary = stage_root / "out" / "hello"
        assert binary.stat().st_uid == 65534
        assert binary.read_bytes()[18] == EM_AARCH64
        if qemu.find_qemu(toolchain):
            assert qemu.run_binary(toolchain, binary) == "hello from nobody, hello.c\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)
