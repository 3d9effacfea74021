"""`xarch load`: OCI layouts and docker-archives into a real dockerd through the docker SDK."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import docker.errors
import pytest
from click.testing import CliRunner

from tests.support.dockerd import (
    unique_tag,
    write_busybox_layout,
)
from tests.support.needs import need_tool
from xarch.cli.load import load_command
from xarch.docker.load import DockerError, load_archive, load_image
from xarch.oci.verified import BlobMismatch

pytestmark = pytest.mark.docker


@pytest.fixture
def host_busybox() -> Path:
    return Path(need_tool("busybox"))


@pytest.fixture
def two_arch_layout(tmp_path: Path, host_busybox: Path, arm64_busybox: Path) -> Path:
    layout = tmp_path / "two.oci"
    write_busybox_layout([(host_busybox, "amd64"), (arm64_busybox, "arm64")], layout)
    return layout


def test_load_picks_the_asked_platform_and_tags_it(
    docker_client: docker.DockerClient, made_images: list[str], two_arch_layout: Path
) -> None:
    tag = unique_tag()
    made_images.append(tag)
    loaded = load_image(two_arch_layout, platform="arm64", tag=tag, client=docker_client)
    image = docker_client.images.get(tag)
    assert image.id == loaded.image_id
    assert image.attrs["Architecture"] == "arm64"
    assert loaded.platform == "linux/arm64"
    assert loaded.tag == tag


def test_load_json_names_what_docker_now_holds(
    docker_client: docker.DockerClient, made_images: list[str], two_arch_layout: Path
) -> None:
    import json

    tag = unique_tag()
    made_images.append(tag)
    result = CliRunner().invoke(load_command,
                                [str(two_arch_layout), "--platform", "arm64", "-t", tag, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["image_id"] == docker_client.images.get(tag).id
    assert answer["platform"] == "linux/arm64" and answer["tag"] == tag


def test_load_defaults_to_the_host_platform(
    docker_client: docker.DockerClient, made_images: list[str], two_arch_layout: Path
) -> None:
    tag = unique_tag()
    made_images.append(tag)
    loaded = load_image(two_arch_layout, tag=tag, client=docker_client)
    assert docker_client.images.get(tag).attrs["Architecture"] == "amd64"
    assert loaded.platform == "linux/amd64"


def test_loaded_image_runs(
    docker_client: docker.DockerClient, made_images: list[str], two_arch_layout: Path
) -> None:
    tag = unique_tag()
    made_images.append(tag)
    load_image(two_arch_layout, platform="amd64", tag=tag, client=docker_client)
    out = docker_client.containers.run(tag, ["/bin/echo", "hello from xarch"], remove=True,
                                       network_disabled=True)
    assert out == b"hello from xarch\n"


def test_a_platform_the_layout_lacks_is_named_in_the_error(
    docker_client: docker.DockerClient, tmp_path: Path, host_busybox: Path
) -> None:
    layout = tmp_path / "one.oci"
    write_busybox_layout([(host_busybox, "amd64"), (host_busybox, "ppc64le")], layout)
    expected = r"no image for linux/arm64 \(the layout has: linux/amd64, linux/ppc64le\)"
    with pytest.raises(DockerError, match=expected):
        load_image(layout, platform="arm64", tag=unique_tag(), client=docker_client)


def test_a_docker_archive_loads_and_returns_its_id(
    docker_client: docker.DockerClient, made_images: list[str], tmp_path: Path, host_busybox: Path
) -> None:
    skopeo = need_tool("skopeo")
    layout = tmp_path / "layout"
    write_busybox_layout([(host_busybox, "amd64")], layout)
    tag = unique_tag()
    made_images.append(tag)
    archive = tmp_path / "image.tar"
    subprocess.run([skopeo, "copy", "--quiet", f"oci:{layout}:latest", f"docker-archive:{archive}:{tag}"],
                   check=True)
    image_id = load_archive(archive, docker_client)
    assert docker_client.images.get(tag).id == image_id
    # through load_image, retagged
    other = unique_tag()
    made_images.append(other)
    loaded = load_image(archive, tag=other, client=docker_client)
    assert loaded.image_id == image_id
    assert docker_client.images.get(other).id == image_id


def test_an_invalid_tag_loads_nothing(docker_client: docker.DockerClient, two_arch_layout: Path) -> None:
    before = {image.id for image in docker_client.images.list(all=True)}
    with pytest.raises(DockerError, match="invalid image tag 'Not A Tag'"):
        load_image(two_arch_layout, platform="amd64", tag="Not A Tag", client=docker_client)
    assert {image.id for image in docker_client.images.list(all=True)} == before


def test_a_corrupt_blob_is_refused(
    docker_client: docker.DockerClient, tmp_path: Path, host_busybox: Path
) -> None:
    layout = tmp_path / "bad.oci"
    write_busybox_layout([(host_busybox, "amd64")], layout)
    biggest = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:-1] + b"X")
    with pytest.raises(BlobMismatch, match=rf"{layout}: blob sha256:{biggest.name} does not match"):
        load_image(layout, tag=unique_tag(), client=docker_client)


def test_the_load_command_prints_what_it_loaded(
    docker_client: docker.DockerClient, made_images: list[str], two_arch_layout: Path
) -> None:
    tag = unique_tag()
    made_images.append(tag)
    result = CliRunner().invoke(load_command, [str(two_arch_layout), "--platform", "arm64", "--tag", tag])
    assert result.exit_code == 0, result.output
    image = docker_client.images.get(tag)
    expected = f"loaded {tag} (linux/arm64) {image.id} from OCI layout folder {two_arch_layout}"
    assert result.output.strip() == expected


def test_an_unreachable_daemon_is_one_clear_error(
    tmp_path: Path, host_busybox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "one.oci"
    write_busybox_layout([(host_busybox, "amd64")], layout)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    with pytest.raises(DockerError, match=r"cannot reach the Docker engine at unix://.*no-daemon\.sock.*dockerd"):
        load_image(layout, tag="xarch-test/never:loaded")


def test_a_missing_layout_is_named(tmp_path: Path) -> None:
    with pytest.raises(DockerError, match="nothing-here: no such file or folder"):
        load_image(tmp_path / "nothing-here", tag="x:y")


def test_an_oci_archive_loads_like_a_layout(
    docker_client: docker.DockerClient, made_images: list[str], tmp_path: Path, host_busybox: Path
) -> None:
    skopeo = need_tool("skopeo")
    layout = tmp_path / "layout"
    write_busybox_layout([(host_busybox, "amd64")], layout)
    archive = tmp_path / "image.oci.tar"
    subprocess.run([skopeo, "copy", "--quiet", f"oci:{layout}:latest", f"oci-archive:{archive}:latest"],
                   check=True)
    tag = unique_tag()
    made_images.append(tag)
    loaded = load_image(archive, tag=tag, client=docker_client)
    assert docker_client.images.get(tag).id == loaded.image_id
    assert loaded.platform == "linux/amd64"


def test_a_platform_for_a_docker_archive_is_refused_before_loading(
    docker_client: docker.DockerClient, tmp_path: Path, host_busybox: Path
) -> None:
    skopeo = need_tool("skopeo")
    layout = tmp_path / "layout"
    write_busybox_layout([(host_busybox, "amd64")], layout)
    archive = tmp_path / "image.tar"
    tag = unique_tag()
    subprocess.run([skopeo, "copy", "--quiet", f"oci:{layout}:latest", f"docker-archive:{archive}:{tag}"],
                   check=True)
    with pytest.raises(DockerError, match="a docker-archive holds one platform"):
        load_image(archive, platform="arm64", client=docker_client)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
