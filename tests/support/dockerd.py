"""Fixtures for tests that talk to a real dockerd.

tests/conftest.py registers them; a test names them as arguments (`dockerd`, `docker_client`, …).
Without a daemon the tests skip, or fail under XARCH_REQUIRE_TOOLS=1 (CI), where
scripts/setup-host has started one.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.support.needs import missing, need_tool
from xarch.run.buildx import BuildxError, find_docker


@pytest.fixture(scope="session")
def dockerd() -> Iterator[docker.DockerClient]:
    """A client of a dockerd that answers; the test is skipped (or fails in CI) otherwise."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        missing(f"dockerd does not answer ({exc}); scripts/start-dockerd starts one")
    yield client
    client.close()


@pytest.fixture
def docker_client(dockerd: docker.DockerClient) -> docker.DockerClient:
    """The daemon's docker SDK client (shared by the session)."""
    return dockerd


@pytest.fixture(scope="module")
def buildx(dockerd: docker.DockerClient) -> str:
    """The docker client with a working buildx plugin."""
    need_tool("docker")
    try:
        return find_docker()
    except BuildxError as error:
        missing(str(error))


@pytest.fixture
def made_images(dockerd: docker.DockerClient) -> Iterator[list[str]]:
    """A list the test appends the tags or ids of images it makes to; they are removed after."""
    made: list[str] = []
    yield made
    for ref in made:
        try:
            dockerd.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass


def unique_tag(prefix: str = "xarch-test") -> str:
    """A tag no other test (or earlier run) uses: tests run against a shared daemon."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}:test"


# --- a tiny arm64 (or any arch) base image with a shell, for `RUN` steps --------------------


def debian_busybox(debian_arch: str, workdir: Path) -> Path:
    """The static busybox binary of Debian's busybox-static for DEBIAN_ARCH.

    apt-get download checks the .deb against the signed package index. Needs the arch added
    with `dpkg --add-architecture` (scripts/setup-host does arm64).
    """
    need_tool("apt-get")
    workdir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["apt-get", "download", "-qq", f"busybox-static:{debian_arch}"],
        cwd=workdir, capture_output=True, text=True,
    )
    debs = sorted(workdir.glob(f"busybox-static_*_{debian_arch}.deb"))
    if result.returncode != 0 or not debs:
        missing(f"cannot download busybox-static:{debian_arch}: {result.stderr.strip()}")
    root = workdir / f"root-{debian_arch}"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    return root / "bin" / "busybox"


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def busybox_image_blobs(layout: Path, busybox: Path, architecture: str) -> dict[str, object]:
    """Write the blobs of one image (busybox at /bin/busybox, /bin/sh linked to it) into
    LAYOUT; returns its manifest descriptor, with the platform."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("bin", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        data = busybox.read_bytes()
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in ("sh", "echo", "cat", "uname", "mkdir", "ln", "chmod", "chown"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
    layer_desc = _blob(layout, layer.getvalue())
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    config_desc = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
    }
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(layout, json.dumps(manifest, sort_keys=True).encode()),
        "platform": {"architecture": architecture, "os": "linux"},
    }


def write_busybox_layout(images: list[tuple[Path, str]], layout: Path, tag: str = "latest") -> None:
    """An OCI layout of busybox images, one per (busybox binary, OCI architecture).

    One image is named by index.json directly (as skopeo wants); several go into a nested
    index, as xarch writes them. Written by hand, not by xarch's own writer, so Docker
    tests do not depend on the code under test to make their inputs.
    """
    descriptors = [busybox_image_blobs(layout, busybox, arch) for busybox, arch in images]
    if len(descriptors) == 1:
        top = descriptors[0]
    else:
        nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": descriptors}
        top = {"mediaType": "application/vnd.oci.image.index.v1+json",
               **_blob(layout, json.dumps(nested, sort_keys=True).encode())}
    index = {
        "schemaVersion": 2,
        "manifests": [{**top, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def load_layout_into_docker(layout: Path, tag: str, ref: str) -> None:
    """Copy the image TAG of an OCI layout into dockerd as REF, keeping its architecture.

    `docker import` would record the host's architecture; skopeo keeps the config as is.
    """
    skopeo = need_tool("skopeo")
    result = subprocess.run(
        [skopeo, "copy", "--quiet", f"oci:{layout}:{tag}", f"docker-daemon:{ref}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"skopeo copy to docker-daemon failed: {result.stderr.strip()}")


@pytest.fixture(scope="session")
def arm64_busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's static arm64 busybox binary."""
    return debian_busybox("arm64", tmp_path_factory.mktemp("busybox-deb"))


@pytest.fixture(scope="session")
def busybox_arm64_image(
    dockerd: docker.DockerClient, arm64_busybox: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A tag in dockerd of an arm64 image with busybox as /bin/sh: a base for `RUN` steps."""
    layout = tmp_path_factory.mktemp("busybox-arm64") / "layout"
    write_busybox_layout([(arm64_busybox, "arm64")], layout)
    ref = unique_tag("xarch-test/busybox-arm64")
    load_layout_into_docker(layout, "latest", ref)
    yield ref
    try:
        dockerd.images.remove(ref, force=True)
    except docker.errors.ImageNotFound:
        pass
