"""scripts/start-dockerd: leaves a running daemon alone, reports one that cannot start."""
# The dockerd fixture is imported and then named as an argument:

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest

from tests.support.needs import need_root, need_tool

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize("script", ["setup-host", "start-dockerd", "fresh-check"])
def test_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(SCRIPTS / script)], check=True)


@pytest.mark.docker
def test_a_running_daemon_is_left_alone(dockerd: docker.DockerClient) -> None:
    result = subprocess.run(["bash", str(SCRIPTS / "start-dockerd")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "already answers" in result.stdout


def test_a_daemon_that_dies_is_one_clear_error(tmp_path: Path) -> None:
    need_root("starting dockerd needs root")
    need_tool("dockerd")
    env = {
        **os.environ,
        "XARCH_DOCKERD_SOCKET": str(tmp_path / "docker.sock"),
        "XARCH_DOCKERD_LOG": str(tmp_path / "dockerd.log"),
        "XARCH_DOCKERD_ARGS": "--no-such-flag",
        "XARCH_DOCKERD_TIMEOUT": "20",
    }
    result = subprocess.run(["bash", str(SCRIPTS / "start-dockerd")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert f"dockerd exited during start-up; last lines of {tmp_path}/dockerd.log above" in result.stderr
    assert "unknown flag: --no-such-flag" in result.stderr
