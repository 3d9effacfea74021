"""`xarch inspect`'s summary (xarch/summary.py) and its --files/--packages/--config views
(xarch/diff/views.py) on a real two-layer layout written by xarch's OCI core, whiteouts included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.support.oci_images import EPOCH
from xarch.diff.views import show
from xarch.errors import InputError
from xarch.oci.compress import compressor_id
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.index import build_index
from xarch.oci.layer import build_layer
from xarch.oci.layout import Artifact, write_layout
from xarch.oci.tree import Entry
from xarch.summary import InspectError, summarize_path

STATUS = b"""Package: zlib1g
Status: install ok installed
Architecture: arm64
Source: zlib (1:1.2.13)
Version: 1:1.2.13

Package: gone
Status: deinstall ok config-files
Version: 1

Package: base-files
Status: install ok installed
Architecture: arm64
Version: 12.4
"""
PLATFORMS = ({"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"})


def write_image(target: Path, platforms: tuple[dict[str, str], ...] = PLATFORMS) -> Path:
    """Layer 1 has bin/tool, etc/motd and opt/a/x; layer 2 deletes bin/tool (a whiteout), empties
    opt/a (an opaque whiteout), adds opt/a/y and the dpkg database."""
    first = [Entry("bin", "dir", 0o755), Entry("bin/tool", "file", 0o755, data=b"tool\n"),
             Entry("etc", "dir", 0o755), Entry("etc/motd", "file", 0o644, data=b"hi\n", uid=1, gid=2),
             Entry("opt", "dir", 0o755), Entry("opt/a", "dir", 0o755),
             Entry("opt/a/x", "file", 0o600, data=b"x")]
    second = [Entry("bin", "dir", 0o755), Entry("bin/.wh.tool", "file", 0o644, data=b""),
              Entry("opt", "dir", 0o755), Entry("opt/a", "dir", 0o755),
              Entry("opt/a/.wh..wh..opq", "file", 0o644, data=b""),
              Entry("opt/a/y", "symlink", 0o777, linkname="x"),
              Entry("var", "dir", 0o755), Entry("var/lib", "dir", 0o755), Entry("var/lib/dpkg", "dir", 0o755),
              Entry("var/lib/dpkg/status", "file", 0o644, data=STATUS)]
    images = []
    for platform in platforms:
        layers = [build_layer("base", first, EPOCH, 6), build_layer("app", second, EPOCH, 6)]
        images.append(build_image(platform, layers, RuntimeConfig(cmd=["/bin/sh"], env=["A=1"]), EPOCH,
                                  compressor_id(6), {}))
    index = build_index([image.manifest_descriptor for image in images], {})
    artifact = Artifact(index, tuple(images), "1.0")
    write_layout(artifact, target)
    return target


def test_the_summary_has_a_row_per_platform(tmp_path: Path) -> None:
    layout = write_image(tmp_path / "img")
    summary = summarize_path(layout)
    assert summary.kind == "oci" and summary.index_digest is not None
    assert [(row.platform, row.layers) for row in summary.images] == [("linux/amd64", 2), ("linux/arm64", 2)]
    manifest = json.loads((layout / "blobs" / "sha256" / summary.images[0].manifest_digest[7:]).read_bytes())
    assert summary.images[0].compressed_size == sum(layer["size"] for layer in manifest["layers"])


def test_a_folder_that_is_no_image_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with pytest.raises(InspectError) as caught:
        summarize_path(tmp_path / "notes")
    notes = tmp_path / "notes"
    assert str(caught.value) == f"{notes}: not an OCI layout (no oci-layout and no index.json)"  # named once


def test_files_are_the_layers_applied_with_their_whiteouts(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    layout = write_image(tmp_path / "img")
    show(str(layout), "arm64", "files", True, Console())
    listing = json.loads(capsys.readouterr().out)
    assert listing["platform"] == "linux/arm64"
    files = {entry["path"]: entry for entry in listing["files"]}
    assert "/bin/tool" not in files and "/opt/a/x" not in files  # whiteout, opaque whiteout
    assert not any(".wh." in path for path in files)
    assert files["/opt/a/y"]["type"] == "symlink" and files["/opt/a/y"]["link"] == "x"
    motd = files["/etc/motd"]
    assert (motd["owner"], motd["mode"], motd["layer"]) == ("1:2", "0644", 0)
    assert files["/var/lib/dpkg/status"]["layer"] == 1


def test_packages_are_the_installed_ones_of_the_dpkg_database(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    layout = write_image(tmp_path / "img")
    show(str(layout), "linux/arm64", "packages", True, Console())
    packages = json.loads(capsys.readouterr().out)["packages"]
    assert packages == [
        {"name": "base-files", "version": "12.4", "architecture": "arm64", "source": "base-files"},
        {"name": "zlib1g", "version": "1:1.2.13", "architecture": "arm64", "source": "zlib"},
    ]


def test_the_config_view_prints_the_image_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = write_image(tmp_path / "img", PLATFORMS[:1])
    show(str(layout), None, "config", True, Console())  # one image: no --platform needed
    config = json.loads(capsys.readouterr().out)
    assert config["config"]["Cmd"] == ["/bin/sh"] and config["config"]["Env"] == ["A=1"]
    assert config["architecture"] == "amd64"


@pytest.mark.parametrize(("platform", "message"), [
    (None, "holds 2 images (linux/amd64, linux/arm64): choose one with --platform"),
    ("riscv64", "no image for riscv64 (platforms: linux/amd64, linux/arm64)"),
])
def test_a_platform_that_names_no_single_image_is_one_error(tmp_path: Path, platform: str | None,
                                                            message: str) -> None:
    layout = write_image(tmp_path / "img")
    with pytest.raises(InputError) as caught:
        show(str(layout), platform, "files", False, Console())
    assert str(caught.value).endswith(message)
