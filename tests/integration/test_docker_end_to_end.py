"""`docker xarch build` gives what `xarch build` gives, and both platforms load and run in Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import unique_tag
from tests.support.needs import need_tool, not_applicable
from xarch import platforms
from xarch.cli.plugin import install_plugin
from xarch.docker.load import load_image

REPO = Path(__file__).resolve().parents[2]

RECIPE = """\
name: plugin-hello
tag: "1.0"
platforms: [amd64, arm64]
epoch: 1700000000
config:
  entrypoint: ["/bin/busybox", "sh", "-c"]
  cmd: ["echo \\"arch: $(uname -m)\\""]
  env:
    PATH: /bin
files:
  - src: bin/{arch}/busybox
    dst: /bin/busybox
    mode: "0755"
"""


@pytest.fixture
def recipe_dir(tmp_path: Path, arm64_busybox: Path) -> Path:
    if platforms.host().name != "amd64":
        not_applicable("the host's own busybox stands in for amd64's: needs an amd64 host")
    folder = tmp_path / "recipe"
    host_busybox = Path(need_tool("busybox"))
    for arch, binary in (("amd64", host_busybox), ("arm64", arm64_busybox)):
        (folder / "bin" / arch).mkdir(parents=True)
        shutil.copy(binary, folder / "bin" / arch / "busybox")
    (folder / "xarch.yaml").write_text(RECIPE)
    return folder


@pytest.mark.docker
@pytest.mark.qemu
@pytest.mark.slow
def test_docker_xarch_build_matches_xarch_build_and_both_platforms_run(
    recipe_dir: Path, tmp_path: Path, docker_client: docker.DockerClient, made_images: list[str]
) -> None:
    docker_bin = need_tool("docker")
    config = tmp_path / "docker-config"
    install_plugin(config / "cli-plugins")
    env = {**os.environ, "DOCKER_CONFIG": str(config), "PYTHONPATH": str(REPO)}

    through_docker = subprocess.run(
        [docker_bin, "xarch", "build", "-f", str(recipe_dir / "xarch.yaml"),
         "-o", f"oci:{tmp_path / 'via-docker'}"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert through_docker.returncode == 0, through_docker.stderr
    direct = subprocess.run(
        [sys.executable, "-m", "xarch.cli", "build", "-f", str(recipe_dir / "xarch.yaml"),
         "-o", f"oci:{tmp_path / 'direct'}"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert direct.returncode == 0, direct.stderr
    index = (tmp_path / "via-docker" / "index.json").read_bytes()
    assert index == (tmp_path / "direct" / "index.json").read_bytes()

    for platform, machine in (("amd64", "x86_64"), ("arm64", "aarch64")):
        tag = unique_tag()
        made_images.append(tag)
        loaded = load_image(tmp_path / "via-docker", platform=platform, tag=tag, client=docker_client)
        assert loaded.platform == f"linux/{platform}"
        output = docker_client.containers.run(tag, remove=True, network_disabled=True)
        assert output == f"arch: {machine}\n".encode()
