"""`xarch sbom IMAGE -o FILE` never destroys data (found by trying it as a new user would).

Before: `-o LAYOUT/index.json` replaced the layout's own index with the SBOM, `-o IMAGE.tar`
replaced the archive being read, a FIFO was replaced by a file, and a folder gave
"/.tmp.tmp-… -> /tmp: Is a directory".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, xarch, xarch_ok
from xarch import platforms

HOST = platforms.host().name


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sbom-out")
    (folder / "src").mkdir()
    (folder / "src" / "a.txt").write_text("a\n")
    (folder / "src" / "xarch.yaml").write_text(
        f"name: s\nplatforms: [{HOST}]\nepoch: {EPOCH}\nfiles:\n  - {{src: a.txt, dst: /a.txt}}\n")
    xarch_ok("build", "-f", str(folder / "src" / "xarch.yaml"), "-q", "--sbom",
             "-o", f"oci:{folder / 'image'}", "-o", f"oci-archive:{folder / 'image.tar'}",
             cache=folder / "cache")
    os.mkfifo(folder / "fifo")
    return folder


@pytest.mark.parametrize(("image", "target", "message"), [
    ("image", "image/index.json", "is inside the OCI layout"),
    ("image", "image/blobs/sha256/new", "is inside the OCI layout"),
    ("image.tar", "image.tar", "is the image being read"),
    ("image", "fifo", "exists and is not a regular file"),
    ("image", "src", "is a folder"),
])
def test_sbom_output_that_would_destroy_data_is_refused(built: Path, image: str, target: str,
                                                        message: str) -> None:
    before = {p: p.read_bytes() for p in (built / "image").rglob("*") if p.is_file()}
    result = xarch("sbom", str(built / image), "-o", str(built / target), cache=built / "cache")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith(f"xarch: error: -o {built / target}: {message}"), result.stderr
    assert {p: p.read_bytes() for p in (built / "image").rglob("*") if p.is_file()} == before
    assert (built / "fifo").is_fifo() and (built / "image.tar").stat().st_size > 1000


def test_sbom_output_replaces_a_file_or_link(built: Path) -> None:
    (built / "old.json").write_text("old")
    (built / "link.json").symlink_to(built / "image.tar")
    for name in ("old.json", "link.json", "new/dir/sbom.json"):
        xarch_ok("sbom", str(built / "image.tar"), "-o", str(built / name), cache=built / "cache")
        assert b'"spdxVersion"' in (built / name).read_bytes()
    assert not (built / "link.json").is_symlink() and (built / "image.tar").stat().st_size > 1000


def test_a_damaged_layout_is_named_once(built: Path, tmp_path: Path) -> None:
    # `xarch inspect --files d` said "d: d: blob … is missing".
    import json
    import shutil

    damaged = tmp_path / "d"
    shutil.copytree(built / "image", damaged)
    index = json.loads((damaged / "index.json").read_text())
    inner = json.loads((damaged / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    manifest = json.loads((damaged / "blobs" / "sha256" / inner["manifests"][0]["digest"][7:]).read_text())
    layer = manifest["layers"][0]["digest"]
    (damaged / "blobs" / "sha256" / layer[7:]).unlink()
    result = xarch("inspect", "--files", str(damaged), cache=built / "cache")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"xarch: error: {damaged}: blob {layer} is missing "
                                          f"(blobs/sha256/{layer[7:]})"]
