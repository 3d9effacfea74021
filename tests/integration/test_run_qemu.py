"""binfmt_misc, QEMU, the interpreter copy and the rootless route, with the real kernel and QEMU."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.needs import missing, need_root, need_tool
from xarch import platforms
from xarch.errors import XarchError
from xarch.run import binfmt, qemu
from xarch.run.cache import StepCache
from xarch.run.chroot import rootfs_command, run_in_rootfs
from xarch.run.steps import FIXED_PATH, StepFailed, StepSpec, run_stage_steps


@pytest.mark.qemu
def test_set_up_binfmt_reports_a_working_aarch64_entry(arm64_emulation: platforms.Platform) -> None:
    state = binfmt.status(arm64_emulation)
    found = qemu.find_qemu(arm64_emulation)
    assert state.works and state.entry is not None and found is not None
    assert Path(state.entry.interpreter).resolve() == found.resolve()


@pytest.mark.qemu
def test_interpreter_is_copied_in_without_fix_binary_and_removed_after(
    arm64_emulation: platforms.Platform, arm64_rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Re-registering the host's entry without F would break concurrent emulation, so the
    # status is read as if F were absent; the copy itself and the step run are real.
    real = binfmt.status(arm64_emulation)
    assert real.entry is not None
    without_f = binfmt.BinfmtStatus(
        real.name, real.mounted, real.globally_enabled,
        binfmt.BinfmtEntry(real.entry.name, True, real.entry.interpreter, real.entry.flags.replace("F", "")),
    )
    monkeypatch.setattr(binfmt, "status", lambda platform, root=binfmt.BINFMT_DIR: without_f)
    inside = real.entry.interpreter
    lines: list[str] = []
    step = f"test -x {inside} && echo present"
    qemu.run_emulated(arm64_emulation, arm64_rootfs, step, {"PATH": FIXED_PATH}, log=lines.append)
    assert lines == ["present"]
    assert not (arm64_rootfs / inside.lstrip("/")).exists()
    assert not (arm64_rootfs / "usr").exists()  # the directories made for it are gone too


@pytest.mark.qemu
def test_run_binary_runs_a_static_arm64_busybox(arm64_emulation: platforms.Platform,
                                                arm64_rootfs: Path) -> None:
    output = qemu.run_binary(arm64_emulation, arm64_rootfs / "bin" / "busybox", ["uname", "-m"])
    assert output == "aarch64\n"


def test_missing_qemu_names_the_package() -> None:
    ghost = platforms.Platform(
        name="ghost", os="linux", architecture="ghost", variant=None, debian_arch="ghost",
        triplet="ghost-linux-gnu", qemu="ghost", uname_machine="ghost",
    )
    with pytest.raises(qemu.EmulationUnavailable) as caught:
        qemu.require_emulation(ghost)
    assert str(caught.value) == (
        "cannot emulate ghost: qemu-ghost-static is not installed "
        "(fix: apt-get install qemu-user-static binfmt-support)"
    )


@pytest.mark.qemu
def test_rootless_route_runs_an_emulated_step_as_an_unprivileged_user(arm64_emulation: platforms.Platform,
                                                                     arm64_rootfs: Path) -> None:
    """The exact command xarch runs without root, started as `nobody` (a real unprivileged user)."""
    need_root("to become another user; as non-root the default route is the rootless one")
    setpriv = need_tool("setpriv")
    # pytest's tmp dirs are private to root; nobody needs a path it can reach.
    base = Path(tempfile.mkdtemp(prefix="xarch-rootless-"))
    try:
        rootfs = base / "root"
        shutil.copytree(arm64_rootfs, rootfs, symlinks=True)
        subprocess.run(["chown", "-R", "65534:65534", str(base)], check=True)
        step = StepSpec("id -u > /id.txt && uname -m >> /id.txt")
        command = rootfs_command(rootfs, step.run, cwd="/", rootless=True)
        completed = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i", f"PATH={FIXED_PATH}",
             *command],
            capture_output=True, text=True,
        )
        if completed.returncode != 0 and "Operation not permitted" in completed.stderr:
            missing(f"user namespaces are disabled for unprivileged users: {completed.stderr.strip()}")
        assert completed.returncode == 0, completed.stderr
        assert (rootfs / "id.txt").read_text() == "0\naarch64\n"
        assert (rootfs / "id.txt").stat().st_uid == 65534
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_failed_binfmt_mount_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(binfmt.BinfmtError) as caught:
        binfmt.mount(missing)
    message = str(caught.value)
    assert "\n" not in message
    if os.geteuid() == 0:
        assert message.startswith(f"mounting binfmt_misc at {missing} failed: ")
    else:
        assert "needs root" in message


@pytest.mark.qemu
def test_interpreter_copy_refuses_a_symlink_out_of_the_rootfs(arm64_emulation: platforms.Platform,
                                                              arm64_rootfs: Path,
                                                              tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = binfmt.status(arm64_emulation)
    assert real.entry is not None
    without_f = binfmt.BinfmtStatus(
        real.name, real.mounted, real.globally_enabled,
        binfmt.BinfmtEntry(real.entry.name, True, real.entry.interpreter, real.entry.flags.replace("F", "")),
    )
    monkeypatch.setattr(binfmt, "status", lambda platform, root=binfmt.BINFMT_DIR: without_f)
    outside = tmp_path / "outside"
    outside.mkdir()
    (arm64_rootfs / "usr").symlink_to(outside)  # absolute: from the host it points out of the rootfs
    with pytest.raises(qemu.EmulationUnavailable, match="leads out of the rootfs"):
        qemu.run_emulated(arm64_emulation, arm64_rootfs, "true", {"PATH": FIXED_PATH}, log=lambda line: None)
    assert list(outside.iterdir()) == []


@pytest.mark.qemu
def test_failing_emulated_step_reports_its_exit_code_and_output(arm64_emulation: platforms.Platform,
                                                                arm64_rootfs: Path,
                                                                tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with pytest.raises(StepFailed) as caught:
        run_stage_steps([StepSpec("uname -m\nexit 42")], arm64_rootfs, arm64_emulation, "emulate", source, 0,
                        StepCache(tmp_path / "cache"), lambda line: None)
    assert str(caught.value) == "stage 'build' step 1 (`uname -m`) failed with exit code 42"
    assert [line.strip() for line in caught.value.details] == ["aarch64"]


def test_a_rootfs_without_a_shell_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(XarchError) as caught:
        run_in_rootfs(tmp_path, "true", {}, log=lambda line: None)
    assert str(caught.value) == f"{tmp_path} has no /bin/sh: a stage running steps needs a shell package"
