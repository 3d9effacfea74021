"""Real root filesystems for build-step tests: busybox-static for the host and for arm64."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.needs import missing, need_tool
from tests.support.rootfs_helpers import PongServer, busybox_rootfs, copy_rootfs
from xarch import platforms
from xarch.run import binfmt, qemu


@pytest.fixture(scope="session")
def arm64() -> platforms.Platform:
    return platforms.all_platforms()["arm64"]


@pytest.fixture(scope="session")
def arm64_emulation(arm64: platforms.Platform) -> platforms.Platform:
    """arm64 emulation through binfmt_misc, set up (mounted, enabled) when running as root."""
    need_tool(qemu.binary_name(arm64))
    if os.geteuid() == 0:
        binfmt.ensure_binfmt([arm64], setup=True)
    problem = qemu.emulation_problem(arm64)
    if problem:
        missing(f"arm64 emulation unavailable: {problem.why} (fix: {problem.fix})")
    return arm64


@pytest.fixture(scope="session")
def arm64_busybox_pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox-static:arm64 from Debian's mirror, unpacked with dpkg-deb (once per session)."""
    need_tool("apt-get")
    need_tool("dpkg-deb")
    download = tmp_path_factory.mktemp("busybox-arm64")
    os.chmod(download, 0o777)  # apt downloads as the _apt user when it can
    fetched = subprocess.run(
        ["apt-get", "download", "busybox-static:arm64"], cwd=download, capture_output=True, text=True
    )
    debs = sorted(download.glob("busybox-static_*_arm64.deb"))
    if fetched.returncode != 0 or not debs:
        reason = fetched.stderr.strip().splitlines()[-1] if fetched.stderr.strip() else "no .deb downloaded"
        missing(
            "cannot download busybox-static:arm64 (fix: dpkg --add-architecture arm64 && apt-get update): "
            + reason
        )
    unpacked = download / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
    return busybox_rootfs(download / "root", unpacked / "bin" / "busybox")


@pytest.fixture
def arm64_rootfs(arm64_busybox_pristine: Path, tmp_path: Path) -> Path:
    return copy_rootfs(arm64_busybox_pristine, tmp_path / "arm64-root")


@pytest.fixture
def host_rootfs(tmp_path: Path) -> Path:
    """A rootfs of the host's architecture (for the native strategy) from busybox-static."""
    busybox = need_tool("busybox")
    completed = subprocess.run([need_tool("file"), "-L", busybox], capture_output=True, text=True)
    if "statically linked" not in completed.stdout and "static-pie" not in completed.stdout:
        missing(f"{busybox} is not static (apt-get install busybox-static)")
    return busybox_rootfs(tmp_path / "host-root", Path(busybox))


@pytest.fixture
def pong_server() -> Iterator[PongServer]:
    server = PongServer()
    try:
        yield server
    finally:
        server.close()
