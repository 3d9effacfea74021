"""`xarch plugin install`: the real Docker CLI finds docker-xarch and runs xarch through it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.needs import need_tool
from xarch import __version__
from xarch.cli.plugin import docker_plugin_main, install_plugin, plugin_group


@pytest.fixture
def docker_config(tmp_path: Path) -> dict[str, str]:
    """An environment whose Docker CLI reads plugins from a fresh folder (not the user's)."""
    config = tmp_path / "docker-config"
    config.mkdir()
    return {**os.environ, "DOCKER_CONFIG": str(config)}


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_the_installed_plugin_answers_its_metadata(tmp_path: Path) -> None:
    target = install_plugin(tmp_path / "plugins")
    assert target == tmp_path / "plugins" / "docker-xarch"
    assert os.access(target, os.X_OK)
    metadata = json.loads(run(str(target), "docker-cli-plugin-metadata").stdout)
    assert metadata["SchemaVersion"] == "0.1.0"
    assert metadata["Vendor"] == "xarch"
    assert metadata["Version"] == __version__
    assert metadata["ShortDescription"]


def test_the_console_entry_answers_the_same_metadata(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    docker_plugin_main(["docker-cli-plugin-metadata"])
    from_function = json.loads(capsys.readouterr().out)
    target = install_plugin(tmp_path)
    from_script = json.loads(run(str(target), "docker-cli-plugin-metadata").stdout)
    assert from_function == from_script


def test_docker_lists_and_runs_the_plugin(docker_config: dict[str, str]) -> None:
    docker = need_tool("docker")
    runner = CliRunner(env={"DOCKER_CONFIG": docker_config["DOCKER_CONFIG"]})
    result = runner.invoke(plugin_group, ["install"])
    assert result.exit_code == 0, result.output
    assert (Path(docker_config["DOCKER_CONFIG"]) / "cli-plugins" / "docker-xarch").is_file()

    listing = run(docker, "--help", env=docker_config)
    assert "xarch*" in listing.stdout + listing.stderr

    helped = run(docker, "xarch", "--help", env=docker_config)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: docker xarch")

    version = run(docker, "xarch", "--version", env=docker_config)
    assert version.returncode == 0, version.stderr
    assert __version__ in version.stdout


def test_an_xarch_error_through_docker_is_one_line(docker_config: dict[str, str], tmp_path: Path) -> None:
    docker = need_tool("docker")
    install_plugin(Path(docker_config["DOCKER_CONFIG"]) / "cli-plugins")
    result = run(docker, "xarch", "inspect", str(tmp_path / "missing"), env=docker_config)
    assert result.returncode == 2
    assert result.stderr.startswith("xarch: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_an_unwritable_plugin_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    from xarch.errors import XarchError

    with pytest.raises(XarchError, match="cannot install the Docker plugin at .*file/sub/docker-xarch"):
        install_plugin(blocker / "sub")
