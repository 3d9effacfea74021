"""Real consumers read xarch's layers: multi-member gzip and multithreaded zstd (xarch/oci/compress.py).

Every layer here is several 1 MiB chunks long, and the file that proves the end was read
(`zz/last.txt`) sits in the last chunk. Each consumer decompresses the whole stream and checks
it against the config's diff_id (docker load, containerd's unpacker) or hands back what it
decompressed (skopeo --dest-decompress, umoci unpack, podman's stored digest and
`podman image mount`), which is compared here.

dockerd 20.10 (Debian 12's docker.io) and umoci 0.4.7 do not read zstd layers, so they are
tested with gzip only; skopeo, containerd and podman 4.3 (Debian 12's) read both. podman also
loads and runs the example (examples/hello: its busybox layer is two gzip members, or one zstd
frame). podman 4.3 does not compare a layer with the config's diff_id (it loads other content
without complaint and `podman image inspect` repeats the config), so its tests compare the
digest its storage computed and read files back; test_podman_records_what_it_unpacked_not_the_config
shows it. Each podman test has a private store under /tmp (`--root`, `--runroot`, `--tmpdir`,
runc's `--root`, vfs, no network, no event log), removed afterwards; only containers/image's
blob-info cache for root (/var/lib/containers/cache, which skopeo shares) is outside it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hello import HELLO, copy_hello, run_ok, run_xarch
from tests.support.needs import need_root, need_tool
from xarch import platforms
from xarch.oci.compress import CHUNK, ZSTD_MAGIC, compressor_id
from xarch.oci.digest import OCI_LAYER_GZIP, OCI_LAYER_ZSTD
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.index import build_index
from xarch.oci.layer import Layer, write_layer
from xarch.oci.layout import Artifact, write_layout, write_oci_archive
from xarch.oci.store import Store
from xarch.oci.tree import Entry

EPOCH = 1_700_000_000
TAG = "chunked"
GZIP_MEMBER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # the header every member starts with
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
        assert result.layer.blob.count(GZIP_MEMBER) >= 4
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


@pytest.fixture(scope="module")
def hello_builds(hello_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """examples/hello built for this host's platform from one recipe, as is ("gzip") and with the
    README's `compression: {algorithm: zstd, level: 3}` ("zstd"): each a folder holding the OCI
    layout `layout/` and the oci-archive `image.oci.tar` of the same image (tag 1.0)."""
    root = tmp_path_factory.mktemp("consumers-hello")
    recipe = copy_hello(root / "hello")
    text = recipe.read_text()
    builds = {}
    for algorithm, extra in (("zstd", "\ncompression: {algorithm: zstd, level: 3}\n"), ("gzip", "")):
        recipe.write_text(text + extra)
        out = root / algorithm
        run_ok("build", "-q", "-f", str(recipe), "--platform", platforms.host().name,
               "-o", f"oci:{out / 'layout'}", "-o", f"oci-archive:{out / 'image.oci.tar'}")
        builds[algorithm] = out
    return builds


def test_recipe_chooses_zstd(hello_builds: dict[str, Path], tmp_path: Path) -> None:
    """The README's `compression: {algorithm: zstd, level: 3}`: tar+zstd layers, recorded in the history,
    read back by skopeo; `xarch diff` against the gzip build finds the same content."""
    skopeo = need_tool("skopeo")
    zstd_out, gzip_out = hello_builds["zstd"] / "layout", hello_builds["gzip"] / "layout"
    manifest, config = manifest_and_config(zstd_out)
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


def manifest_and_config(layout: Path) -> tuple[dict, dict]:
    """The manifest and config of the one image in an xarch layout (index → nested index → manifest)."""
    index = json.loads((layout / "index.json").read_text())["manifests"][0]
    nested = json.loads(blob(layout, index["digest"]))
    manifest = json.loads(blob(layout, nested["manifests"][0]["digest"]))
    return manifest, json.loads(blob(layout, manifest["config"]["digest"]))


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


class Podman:
    """Real podman on a private store under ROOT: its own storage (vfs: plain copies, no overlay
    mounts), run state, libpod state and network config, no event log, so nothing of the host's
    podman is read or written and removing ROOT removes everything."""

    def __init__(self, podman: str, root: Path) -> None:
        self.root = root
        self.base = [podman, "--root", str(root / "storage"), "--runroot", str(root / "run"),
                     "--tmpdir", str(root / "libpod"), "--network-config-dir", str(root / "networks"),
                     "--storage-driver", "vfs", "--events-backend", "none", "--cgroup-manager", "cgroupfs",
                     "--runtime-flag", f"root={root / 'runc'}"]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(*self.base, *args)

    def fails(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode != 0, f"podman {' '.join(args)} succeeded: {result.stdout}"
        return result

    def layers(self, image: str) -> list[str]:
        """IMAGE's RootFS.Layers as `podman image inspect` shows them: the config's diff_ids, as given."""
        return list(json.loads(self("image", "inspect", image).stdout)[0]["RootFS"]["Layers"])

    def stored_diff_ids(self) -> set[str]:
        """The digest of every layer in the store as containers/storage computed it from the tar it
        unpacked (vfs-layers/layers.json "diff-digest"): podman 4.3 does not compare it with the
        config's diff_id, so the tests do."""
        layers = self.root / "storage" / "vfs-layers" / "layers.json"
        if not layers.exists():
            return set()
        return {str(layer["diff-digest"]) for layer in json.loads(layers.read_text())}

    def run_image(self, image: str) -> str:
        """`podman run --rm IMAGE`'s stdout: no network, no pull, the ulimits this host's runc needs."""
        return self("run", "--rm", "--pull", "never", "--network", "none", "--ulimit", "nofile=1024:1024",
                    "--ulimit", "nproc=1024:1024", image).stdout


def mounts_under(root: Path) -> list[str]:
    """Mount points below ROOT (/proc/self/mountinfo's fifth field)."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(str(root))]


@pytest.fixture
def podman() -> Iterator[Podman]:
    """A Podman on a fresh store: an image loaded by an earlier test, or a layer of the same diff_id,
    must not stand in for reading this test's blobs. Removed after the test, with a check that no
    container or mount outlived it. Under /tmp itself, not tmp_path: podman 4.3 refuses a runroot
    longer than 50 characters."""
    tool = need_tool("podman")
    need_root("podman's storage as root keeps the layers' owners; rootless needs subuids")
    root = Path(tempfile.mkdtemp(prefix="xarch-podman-", dir="/tmp"))
    podman = Podman(tool, root)
    try:
        yield podman
        assert podman("ps", "--all", "--quiet").stdout.split() == []
    finally:
        for cleanup in (["rm", "--all", "--force"], ["image", "unmount", "--all", "--force"]):
            subprocess.run([*podman.base, *cleanup], capture_output=True, check=False, timeout=120)
        left = mounts_under(root)
        shutil.rmtree(root, ignore_errors=not left)
    assert not left, f"podman left mounts behind: {left}"


def test_podman_pulls_and_mounts_every_member(built: Built, podman: Podman) -> None:
    """podman pull oci:LAYOUT:TAG, then the unpacked layer read back through `podman image mount`:
    every file, the last chunk's included, as written."""
    podman("pull", f"oci:{built.layout}:{TAG}")
    image = built.image.config_descriptor.digest.removeprefix("sha256:")
    assert podman.stored_diff_ids() == {built.layer.diff_id}
    rootfs = Path(podman("image", "mount", image).stdout.strip())
    try:
        assert (rootfs / "data" / "big.bin").read_bytes() == BIG
        assert (rootfs / "data" / "text.txt").read_bytes() == TEXT
        assert (rootfs / "zz" / "last.txt").read_bytes() == LAST
    finally:
        podman("image", "unmount", image)


def changed_archive(built: Built, data: bytes, folder: Path) -> Path:
    """BUILT's image with DATA as its layer's blob (the blob's own digest and size, the config's diff_id
    kept), written as an oci-archive in FOLDER."""
    layer = Layer("data", built.layer.diff_id, data, media_type=OCI_LAYER_GZIP)
    image = build_image(platforms.host().oci_platform(), [layer], RuntimeConfig(cmd=["/nothing"]), EPOCH,
                        compressor_id(6, "gzip"))
    archive = folder / "changed.oci.tar"
    write_oci_archive(Artifact(build_index([image.manifest_descriptor], {}), (image,), TAG), archive, EPOCH)
    return archive


def test_podman_refuses_a_layer_without_its_last_member(gzip_built: Built, podman: Podman,
                                                        tmp_path: Path) -> None:
    """A gzip stream cut at its last member's header is whole members, but the tar in them stops short:
    podman reads on to the end and refuses it, and stores nothing."""
    whole = gzip_built.layer.blob
    refused = podman.fails("load", "-i", str(changed_archive(gzip_built, whole[:whole.rindex(GZIP_MEMBER)],
                                                             tmp_path)))
    assert "unexpected EOF" in refused.stderr, refused.stderr
    assert podman.stored_diff_ids() == set()
    assert podman("images", "--all", "--quiet").stdout.split() == []


def test_podman_records_what_it_unpacked_not_the_config(gzip_built: Built, podman: Podman,
                                                        tmp_path: Path) -> None:
    """Why the other podman tests compare the digest podman's storage computed, and read files back,
    rather than trust a load: podman 4.3 loads a layer whose content is not the config's diff_id (the
    last file changed) without complaint, and `podman image inspect` shows the config's diff_id; its
    storage records the digest of what it unpacked."""
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    other = [e if e.path != "zz/last.txt" else Entry(e.path, "file", 0o644, data=LAST.upper())
             for e in entries(source)]
    layer = write_layer("data", other, EPOCH, Store(tmp_path / "store"), "gzip", 6)
    podman("load", "-i", str(changed_archive(gzip_built, layer.blob, tmp_path)))
    assert podman.layers("localhost/chunked:latest") == [gzip_built.layer.diff_id]  # the config's
    assert podman.stored_diff_ids() == {layer.diff_id} != {gzip_built.layer.diff_id}
    rootfs = Path(podman("image", "mount", "localhost/chunked:latest").stdout.strip())
    try:
        assert (rootfs / "zz" / "last.txt").read_bytes() == LAST.upper()
    finally:
        podman("image", "unmount", "localhost/chunked:latest")


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_podman_loads_and_runs_the_example(hello_builds: dict[str, Path], algorithm: str,
                                           podman: Podman) -> None:
    """podman load -i of the example's oci-archive, then podman run: busybox (two gzip members, or one
    zstd frame) prints the message and the machine."""
    build = hello_builds[algorithm]
    manifest, config = manifest_and_config(build / "layout")
    media_type = OCI_LAYER_ZSTD if algorithm == "zstd" else OCI_LAYER_GZIP
    assert {layer["mediaType"] for layer in manifest["layers"]} == {media_type}
    if algorithm == "gzip":  # the busybox layer spans two 1 MiB chunks
        members = [blob(build / "layout", layer["digest"]).count(GZIP_MEMBER) for layer in manifest["layers"]]
        assert max(members) >= 2, members
    loaded = podman("load", "-i", str(build / "image.oci.tar"))
    assert "Loaded image" in loaded.stdout, loaded.stdout + loaded.stderr
    image = str(manifest["config"]["digest"]).removeprefix("sha256:")
    assert podman.stored_diff_ids() == set(config["rootfs"]["diff_ids"])
    motd = (HELLO / "etc" / "motd").read_text()
    assert podman.run_image(image) == f"{motd}arch: {platforms.host().uname_machine}\n"
