"""`xarch diff` never calls images identical whose digests differ, and never says "same content" of a
layer it has not read: layouts written by xarch, then altered the way a hostile tester altered them
(documents rewritten, descriptors above them rewritten to match)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.support.oci_images import EPOCH, make_artifact
from xarch.diff import DiffError, diff_paths
from xarch.diff.compare import DiffResult
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.layout import write_layout

AMD64 = "linux/amd64"
MANIFEST_CHAIN = ("manifest of linux/amd64", "index")


class Layout:
    """An OCI layout written by xarch (two platforms, amd64 first), with helpers that replace one of
    its documents or layer blobs and rewrite every descriptor above it to match."""

    def __init__(self, path: Path) -> None:
        write_layout(make_artifact(), path)
        self.path = path

    def blob(self, digest: str) -> Path:
        return self.path / "blobs/sha256" / digest.removeprefix("sha256:")

    def put(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blob(digest).write_bytes(data)
        return digest, len(data)

    def top(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "index.json").read_text()))

    def index_bytes(self) -> bytes:
        return self.blob(self.top()["manifests"][0]["digest"]).read_bytes()

    def index(self) -> dict[str, Any]:
        return dict(json.loads(self.index_bytes()))

    def manifest_bytes(self) -> bytes:
        return self.blob(self.index()["manifests"][0]["digest"]).read_bytes()

    def manifest(self) -> dict[str, Any]:
        return dict(json.loads(self.manifest_bytes()))

    def set_index(self, data: bytes) -> None:
        top = self.top()
        top["manifests"][0]["digest"], top["manifests"][0]["size"] = self.put(data)
        (self.path / "index.json").write_text(json.dumps(top))

    def set_manifest(self, data: bytes) -> None:
        index = self.index()
        index["manifests"][0]["digest"], index["manifests"][0]["size"] = self.put(data)
        self.set_index(json.dumps(index).encode())

    def set_config(self, data: bytes) -> None:
        manifest = self.manifest()
        manifest["config"]["digest"], manifest["config"]["size"] = self.put(data)
        self.set_manifest(json.dumps(manifest).encode())

    def layer_bytes(self, n: int) -> bytes:
        return self.blob(self.manifest()["layers"][n]["digest"]).read_bytes()

    def set_layer(self, n: int, data: bytes, media_type: str | None = None) -> str:
        """Replace amd64's layer N blob (the config, and so its diff_ids, unchanged); its digest."""
        manifest = self.manifest()
        layer = manifest["layers"][n]
        layer["digest"], layer["size"] = self.put(data)
        if media_type:
            layer["mediaType"] = media_type
        self.set_manifest(json.dumps(manifest).encode())
        return str(layer["digest"])


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Layout, Layout]:
    return Layout(tmp_path / "a"), Layout(tmp_path / "b")


def assert_differs(result: DiffResult) -> None:
    assert not result.identical
    assert result.differences and result.changed_digests()
    data = result.to_json()
    assert data["identical"] is False and data["changed_digests"]


def bytes_only(result: DiffResult) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (d.platform, d.where, d.changes) for d in result.differences if d.field == "differs in its bytes only"
    ]


def test_a_manifest_that_differs_in_whitespace_alone_is_a_difference(pair: tuple[Layout, Layout]) -> None:
    a, b = pair
    b.set_manifest(b.manifest_bytes() + b"\n")
    result = diff_paths(str(a.path), str(b.path))
    assert_differs(result)
    assert bytes_only(result) == [(AMD64, "manifest", MANIFEST_CHAIN)]
    assert result.changed_digests() == list(MANIFEST_CHAIN)
    assert any(
        note.startswith("manifest of linux/amd64 differs in its bytes only: sha256:") for note in result.notes
    )
    # --platform: the platform's manifest is the identity, and it differs.
    assert bytes_only(diff_paths(str(a.path), str(b.path), platform="amd64"))
    assert diff_paths(str(a.path), str(b.path), platform="arm64").identical


def test_an_index_with_a_duplicate_key_is_a_difference_of_the_index(pair: tuple[Layout, Layout]) -> None:
    a, b = pair
    text = b.index_bytes().decode()
    b.set_index(text.replace('"schemaVersion"', '"schemaVersion":1,"schemaVersion"', 1).encode())
    result = diff_paths(str(a.path), str(b.path))
    assert_differs(result)
    assert bytes_only(result) == [("", "index", ("index",))]
    # With --platform, each chosen platform's manifest is what must match: they do.
    assert diff_paths(str(a.path), str(b.path), platform="amd64").identical


def test_a_config_that_differs_in_its_bytes_only_names_config_manifest_index(
    pair: tuple[Layout, Layout],
) -> None:
    a, b = pair
    config = b.blob(b.manifest()["config"]["digest"]).read_bytes()
    b.set_config(config + b" ")
    result = diff_paths(str(a.path), str(b.path))
    assert bytes_only(result) == [(AMD64, "config", ("config of linux/amd64",) + MANIFEST_CHAIN)]
    assert result.changed_digests() == ["config of linux/amd64", *MANIFEST_CHAIN]


@pytest.mark.parametrize("diff_ids", [["sha256:" + "1" * 64, None], []])
def test_diff_ids_unlike_an_equal_layer_are_reported(
    pair: tuple[Layout, Layout], diff_ids: list[Any]
) -> None:
    a, b = pair
    config = json.loads(b.blob(b.manifest()["config"]["digest"]).read_bytes())
    old = config["rootfs"]["diff_ids"]
    config["rootfs"]["diff_ids"] = [new or old[n] for n, new in enumerate(diff_ids)]
    b.set_config(json.dumps(config).encode())
    result = diff_paths(str(a.path), str(b.path))
    assert_differs(result)
    [difference] = result.differences
    assert (difference.where, difference.item, difference.a) == ("config", "rootfs.diff_ids", old)
    assert difference.b == config["rootfs"]["diff_ids"]


def test_descriptor_fields_beyond_media_type_are_compared(pair: tuple[Layout, Layout]) -> None:
    a, b = pair
    manifest = b.manifest()
    manifest["layers"][0]["urls"] = ["http://example.invalid/x"]
    b.set_manifest(json.dumps(manifest).encode())
    [difference] = diff_paths(str(a.path), str(b.path)).differences
    assert (difference.where, difference.item, difference.field) == ("manifest", "layers[0].urls", "value")
    assert difference.changes == MANIFEST_CHAIN

    c = Layout(b.path.parent / "c")
    index = c.index()
    index["manifests"][0]["extra"] = 1
    c.set_index(json.dumps(index).encode())
    [difference] = diff_paths(str(a.path), str(c.path)).differences
    assert (difference.platform, difference.item, difference.b) == (AMD64, "manifests[].extra", 1)


@pytest.mark.parametrize("missing_in", ["a", "b"])
def test_an_index_entry_without_its_platform_is_paired_by_digest(
    pair: tuple[Layout, Layout], missing_in: str
) -> None:
    a, b = pair
    altered = a if missing_in == "a" else b
    index = altered.index()
    platform = index["manifests"][0].pop("platform")
    altered.set_index(json.dumps(index).encode())
    [difference] = diff_paths(str(a.path), str(b.path)).differences
    assert (difference.platform, difference.item) == (AMD64, "manifests[].platform")
    assert (difference.a, difference.b) == ((None, platform) if missing_in == "a" else (platform, None))


def test_a_platform_listed_twice_is_a_difference(pair: tuple[Layout, Layout]) -> None:
    a, b = pair
    index = b.index()
    index["manifests"].append(index["manifests"][0])
    b.set_index(json.dumps(index).encode())
    result = diff_paths(str(a.path), str(b.path))
    assert_differs(result)
    [difference] = result.differences
    assert (difference.platform, difference.item, difference.field, difference.a, difference.b) == (
        AMD64,
        "platform entries",
        "count",
        1,
        2,
    )


def test_inspect_of_a_platform_listed_twice_says_so_and_names_both(pair: tuple[Layout, Layout]) -> None:
    """`--platform amd64` cannot choose between two amd64 entries: the line says that, not "choose
    one with --platform" over a count that disagrees with the list it prints."""
    from xarch.diff.sources import open_source
    from xarch.diff.views import choose
    from xarch.errors import InputError

    _, b = pair
    index = b.index()
    index["manifests"].append(index["manifests"][0])
    b.set_index(json.dumps(index).encode())
    digest = r"sha256:[0-9a-f]{64}"
    with pytest.raises(InputError, match=rf"holds 2 images for amd64 \({digest}, {digest}\); an index"):
        choose(open_source(str(b.path)), "amd64")


def test_a_docker_archive_holding_its_image_twice_is_not_identical(tmp_path: Path) -> None:
    write_docker_archive(make_artifact().images[0], ["t:1"], tmp_path / "one.tar", EPOCH)
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(tmp_path / "one.tar") as archive:
        for member in archive:
            handle = archive.extractfile(member)
            members.append((member, handle.read() if handle else b""))
    with tarfile.open(tmp_path / "two.tar", "w") as archive:
        for member, data in members:
            if member.name == "manifest.json":
                data = json.dumps(json.loads(data) * 2).encode()
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    result = diff_paths(str(tmp_path / "one.tar"), str(tmp_path / "two.tar"))
    assert not result.identical
    [difference] = result.differences
    assert (difference.where, difference.field, difference.a, difference.b) == (
        "manifest.json",
        "count",
        1,
        2,
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from xarch.cli import run; from xarch.cli.diff import diff_command; "
        "run(diff_command, sys.argv[1:], 'xarch diff')"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )


def test_cli_exits_1_on_a_bytes_only_difference(pair: tuple[Layout, Layout]) -> None:
    a, b = pair
    b.set_manifest(b.manifest_bytes() + b"\n")
    table = run_cli(str(a.path), str(b.path))
    assert table.returncode == 1, table.stderr
    assert "differs in its bytes only" in table.stdout and "identical" not in table.stdout
    assert "1 difference; digests that differ: manifest of linux/amd64, index" in table.stdout
    as_json = run_cli("--json", str(a.path), str(b.path))
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["identical"] is False and data["changed_digests"] == list(MANIFEST_CHAIN)


# --- "compression only, same content" is read before it is said -------------------------------------


def tar_of(layout: Layout, n: int) -> bytes:
    return gzip.decompress(layout.layer_bytes(n))


def test_a_real_recompression_is_same_content(pair: tuple[Layout, Layout]) -> None:
    a, b = pair
    b.set_layer(1, gzip.compress(tar_of(b, 1), compresslevel=1, mtime=0))
    [difference] = diff_paths(str(a.path), str(b.path)).differences
    assert (difference.where, difference.field) == (
        "layer 1 (xarch layer app)",
        "compression only, same content",
    )
    c = Layout(a.path.parent / "c")
    c.set_layer(
        1, zstandard.ZstdCompressor().compress(tar_of(c, 1)), "application/vnd.oci.image.layer.v1.tar+zstd"
    )
    assert [
        d.field for d in diff_paths(str(a.path), str(c.path)).differences if d.where.startswith("layer")
    ] == ["compression only, same content"]


def corrupt_middle(data: bytes) -> bytes:
    """DATA (one gzip member) with a byte of its deflate stream changed, still inflatable to the end."""
    for position in range(len(data) // 2, len(data) - 8):
        candidate = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]
        try:
            zlib.decompress(candidate[10:], -15)
        except zlib.error:
            continue
        return candidate
    raise AssertionError("no byte found whose change still inflates")


@pytest.mark.parametrize(
    ("alter", "says"),
    [
        (corrupt_middle, "incorrect data check"),  # one byte flipped inside the gzip member
        (lambda data: data + b"GARBAGE", "bytes after the last member"),
        # zeros after the member: Python's gzip module skips them, Go's (containerd, dockerd) refuses
        (lambda data: data + bytes(512), "bytes after the last member"),
        (lambda data: data[:-3], "ends inside a member"),  # cut short
        (lambda data: bz2.compress(gzip.decompress(data)), "says gzip, its bytes are neither"),
        (
            lambda data: zstandard.ZstdCompressor().compress(gzip.decompress(data)),
            "says gzip, its bytes are zstd",
        ),
    ],
)
def test_a_corrupt_layer_with_the_same_diff_id_is_an_input_error(
    pair: tuple[Layout, Layout], alter: Any, says: str
) -> None:
    a, b = pair
    digest = b.set_layer(1, alter(b.layer_bytes(1)))
    with pytest.raises(DiffError, match=says) as caught:
        diff_paths(str(a.path), str(b.path))
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"B ({AMD64}): {b.path}: ") and digest in message
    # The other way round, the corrupt side is named A.
    with pytest.raises(DiffError, match=rf"^A \({AMD64}\): {b.path}: "):
        diff_paths(str(b.path), str(a.path))


def test_a_whiteout_never_hides_a_file_of_its_own_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OCI image spec, layer.md: whiteouts apply to the layers below only. A layer whose tar holds
    etc/a before etc/.wh.a (and opq/keep before opq/.wh..wh..opq) still shows etc/a and opq/keep."""
    from rich.console import Console

    from xarch.diff.views import show

    layout = Layout(tmp_path / "a")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("etc", tarfile.DIRTYPE), ("etc/a", tarfile.REGTYPE),
                           ("etc/.wh.a", tarfile.REGTYPE), ("opq", tarfile.DIRTYPE),
                           ("opq/keep", tarfile.REGTYPE), ("opq/.wh..wh..opq", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            tar.addfile(info, io.BytesIO(b""))
    layout.set_layer(0, gzip.compress(raw.getvalue(), mtime=0))
    config = json.loads(layout.blob(layout.manifest()["config"]["digest"]).read_bytes())
    config["rootfs"]["diff_ids"][0] = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    layout.set_config(json.dumps(config).encode())
    show(str(layout.path), "amd64", "files", True, Console())
    paths = {entry["path"] for entry in json.loads(capsys.readouterr().out)["files"]}
    assert {"/etc/a", "/opq/keep"} <= paths
    assert not any(".wh." in path for path in paths)
