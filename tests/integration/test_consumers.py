"""Real consumers read xarch's layers: multi-member gzip and multithreaded zstd (xarch/oci/compress.py).

Every layer here is several 1 MiB chunks long, and the file that proves the end was read
(`zz/last.txt`) sits in the last chunk. Each consumer decompresses the whole stream and checks
it against the config's diff_id (docker load, containerd's unpacker) or hands back what it
decompressed (skopeo --dest-decompress, umoci unpack), which is compared here.

dockerd 20.10 (Debian 12's docker.io) and umoci 0.4.7 do not read zstd layers, so they are
tested with gzip only; skopeo and containerd read both. podman is not on the CI host (it reads
layers through containers/image, as skopeo does).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.hello import copy_hello, run_ok, run_xarch
from tests.support.needs import need_root, need_tool
from xarch import platforms
from xarch.oci.compress import CHUNK, ZSTD_MAGIC, compressor_id
from xarch.oci.digest import OCI_LAYER_ZSTD
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.index import build_index
from xarch.oci.layer import write_layer
from xarch.oci.layout import Artifact, write_layout, write_oci_archive
from xarch.oci.store import Store
from xarch.oci.tree import Entry

EPOCH = 1_700_000_000
TAG = "chunked"
BIG = hashlib.shake_256(b"xarch consumers").digest(CHUNK * 3 + 12345)  # incompressible: 4 members
TEXT = b"".join(b"line %d: text compresses well\n" % i for i in range(60_000))
LAST = b"the last file of the last chunk\n"


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr or result.stdout}"
    return result


def entries(source: Path) -> list[Entry]:
    return [
        Entry("data", "dir", 0o755),
        Entry("data/big.bin", "file", 0o644, source=source),
        Entry("data/text.txt", "file", 0o644, data=TEXT),
        Entry("zz", "dir", 0o755),
        Entry("zz/last.txt", "file", 0o644, data=LAST),
    ]


class Built:
    def __init__(self, root: Path, algorithm: str) -> None:
        source = root / "big.bin"
        source.write_bytes(BIG)
        self.store = Store(root / "store")
        layer = write_layer("data", entries(source), EPOCH, self.store, algorithm, 6)
        self.layer = layer
        platform = platforms.host().oci_platform()
        self.image = build_image(platform, [layer], RuntimeConfig(cmd=["/nothing"]), EPOCH,
                                 compressor_id(6, algorithm))
        index = build_index([self.image.manifest_descriptor], {})
        self.artifact = Artifact(index, (self.image,), TAG)
        self.layout = root / "layout"
        write_layout(self.artifact, self.layout)
        self.archive = root / "image.oci.tar"
        write_oci_archive(self.artifact, self.archive, EPOCH)


@pytest.fixture(scope="module", params=["gzip", "zstd"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    algorithm = str(request.param)
    result = Built(tmp_path_factory.mktemp(f"consumers-{algorithm}"), algorithm)
    if algorithm == "gzip":  # the point of these tests: several members
        assert result.layer.blob.count(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff") >= 4
    return result


@pytest.fixture(scope="module")
def gzip_built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(tmp_path_factory.mktemp("consumers-docker"), "gzip")


def test_skopeo_decompresses_every_member(built: Built, tmp_path: Path) -> None:
    skopeo = need_tool("skopeo")
    target = tmp_path / "dir"
    run(skopeo, "copy", "--dest-decompress", f"oci:{built.layout}:{TAG}", f"dir:{target}")
    tar = target / built.layer.diff_id.removeprefix("sha256:")
    assert tar.is_file(), sorted(p.name for p in target.iterdir())
    assert "sha256:" + hashlib.sha256(tar.read_bytes()).hexdigest() == built.layer.diff_id


def test_umoci_unpacks_the_whole_layer(gzip_built: Built, tmp_path: Path) -> None:
    """gzip only: umoci 0.4.7 (Debian 12) refuses tar+zstd layers ("blob is not correct mediatype")."""
    built = gzip_built
    umoci = need_tool("umoci")
    need_root("umoci unpack keeps owners only as root")
    bundle = tmp_path / "bundle"
    run(umoci, "unpack", "--image", f"{built.layout}:{TAG}", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "data" / "big.bin").read_bytes() == BIG
    assert (rootfs / "data" / "text.txt").read_bytes() == TEXT
    assert (rootfs / "zz" / "last.txt").read_bytes() == LAST


def test_containerd_imports_and_unpacks(built: Built) -> None:
    """ctr import unpacks the layer into a snapshot: containerd checks the diff_id it computes."""
    ctr = need_tool("ctr")
    need_root("containerd's socket is root's")
    socket = "/run/docker/containerd/containerd.sock"
    if not Path(socket).exists():
        socket = "/run/containerd/containerd.sock"
    namespace = f"xarch-test-{uuid.uuid4().hex[:8]}"
    base = [ctr, "--address", socket, "--namespace", namespace]
    name = f"example.test/xarch/chunked:{TAG}"
    try:
        run(*base, "images", "import", "--base-name", "example.test/xarch/chunked", str(built.archive))
        listed = run(*base, "images", "list", "--quiet").stdout.split()
        assert name in listed
        check = run(*base, "images", "check").stdout
        assert "complete" in check and built.artifact.index_descriptor.digest in check
        # Unpacked into the default snapshotter: a snapshot keyed by the chain of the diff_id.
        snapshots = run(*base, "snapshots", "list").stdout
        assert built.layer.diff_id in snapshots
    finally:
        subprocess.run([*base, "images", "rm", "--sync", name], capture_output=True, check=False)
        subprocess.run([*base, "snapshots", "rm", built.layer.diff_id], capture_output=True, check=False)
        subprocess.run([*base, "content", "prune", "references"], capture_output=True, check=False)
        subprocess.run([ctr, "--address", socket, "namespaces", "rm", namespace], capture_output=True,
                       check=False)


@pytest.mark.docker
def test_docker_loads_every_member(gzip_built: Built, tmp_path: Path) -> None:
    """docker load of a docker-archive (gzip only: dockerd 20.10 fails on tar+zstd layers with
    "archive/tar: invalid tar header" unless it already has a layer of that diff_id)."""
    docker = need_tool("docker")
    ref = f"xarch-test-chunked:{uuid.uuid4().hex[:10]}"
    archive = tmp_path / "image.docker.tar"
    write_docker_archive(gzip_built.image, [ref], archive, EPOCH)
    container = None
    try:
        run(docker, "load", "-i", str(archive))
        inspected = json.loads(run(docker, "image", "inspect", ref).stdout)[0]
        assert inspected["RootFS"]["Layers"] == [gzip_built.layer.diff_id]
        container = run(docker, "create", ref).stdout.strip()
        copied = run(docker, "cp", f"{container}:/zz/last.txt", str(tmp_path / "last.txt"))
        assert copied.returncode == 0
        assert (tmp_path / "last.txt").read_bytes() == LAST
    finally:
        if container:
            subprocess.run([docker, "rm", "-f", container], capture_output=True, check=False)
        subprocess.run([docker, "rmi", "-f", ref], capture_output=True, check=False)


def test_recipe_chooses_zstd(hello_binaries: Path, tmp_path: Path) -> None:
    """The README's `compression: {algorithm: zstd, level: 3}`: tar+zstd layers, recorded in the history,
    read back by skopeo; `xarch diff` against the gzip build finds the same content."""
    skopeo = need_tool("skopeo")
    recipe = copy_hello(tmp_path / "hello")
    text = recipe.read_text()
    recipe.write_text(text + "\ncompression: {algorithm: zstd, level: 3}\n")
    zstd_out, gzip_out = tmp_path / "zstd", tmp_path / "gzip"
    run_ok("build", "-q", "-f", str(recipe), "--platform", "amd64", "-o", f"oci:{zstd_out}")
    recipe.write_text(text)
    run_ok("build", "-q", "-f", str(recipe), "--platform", "amd64", "-o", f"oci:{gzip_out}")
    index = json.loads((zstd_out / "index.json").read_text())["manifests"][0]
    nested = json.loads(blob(zstd_out, index["digest"]))
    manifest = json.loads(blob(zstd_out, nested["manifests"][0]["digest"]))
    config = json.loads(blob(zstd_out, manifest["config"]["digest"]))
    assert {layer["mediaType"] for layer in manifest["layers"]} == {OCI_LAYER_ZSTD}
    assert all(blob(zstd_out, layer["digest"])[:4] == ZSTD_MAGIC for layer in manifest["layers"])
    assert {h["comment"] for h in config["history"] if "comment" in h} == {compressor_id(3, "zstd")}
    target = tmp_path / "dir"
    run(skopeo, "copy", "--dest-decompress", f"oci:{zstd_out}:1.0", f"dir:{target}")
    for diff_id in config["rootfs"]["diff_ids"]:
        tar = (target / diff_id.removeprefix("sha256:")).read_bytes()
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id
    diff = run_xarch("diff", str(gzip_out), str(zstd_out))
    assert "compression only, same content" in diff.stdout, diff.stdout + diff.stderr


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
