"""End to end: the image cache. An unchanged rebuild comes from $XARCH_CACHE, byte for byte;
any input that changes the image misses; a corrupt cached blob is never served.

Evidence of a hit is `-v`'s "from the cache" line; of correctness, the bytes of the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, FixturePackage, RepoServer, build_deb
from tests.support.e2e import EPOCH, image_files, layout_bytes, manifests, xarch_ok

HIT = "from the cache"


class Project:
    """A recipe with a locked package and a source file, built into numbered outputs."""

    def __init__(self, folder: Path, server: RepoServer, keyring: Path) -> None:
        self.folder = folder
        self.cache = folder.parent / "cache"
        self.server, self.keyring = server, keyring
        self.builds = 0
        folder.mkdir()
        (folder / "data.txt").write_text("version 1\n")
        self.write()

    def write(self, epoch: int = EPOCH, level: int = 6) -> None:
        (self.folder / "xarch.yaml").write_text(f"""\
name: cache-e2e
platforms: [amd64, arm64]
epoch: {epoch}
compression: {{level: {level}}}
sources:
  debian:
    suites: [stable]
    mirror: {self.server.url}
    keyring: {self.keyring}
packages: [plain]
files:
  - {{src: data.txt, dst: /data.txt}}
""")

    def build(self, *flags: str, env: dict[str, str] | None = None) -> tuple[Path, str]:
        self.builds += 1
        out = self.folder.parent / f"out{self.builds}"
        result = xarch_ok("build", "-f", str(self.folder / "xarch.yaml"), "-v", *flags, "-o", f"oci:{out}",
                          cache=self.cache, extra_env=env)
        return out, result.stderr


@pytest.fixture
def project(tmp_path: Path, apt_server: RepoServer, debian_keyring: Path) -> Project:
    return Project(tmp_path / "project", apt_server, debian_keyring)


def hits(log: str) -> int:
    return sum(HIT in line for line in log.splitlines())


def test_an_identical_rebuild_comes_from_the_cache_byte_for_byte(project: Project) -> None:
    first, log = project.build()
    assert hits(log) == 0
    second, log = project.build()
    assert hits(log) == 2, log  # both platforms
    assert "[amd64] no input changed: image sha256:" in log
    assert layout_bytes(first) == layout_bytes(second)


def test_no_cache_rebuilds_the_same_bytes(project: Project) -> None:
    first, _ = project.build()
    second, log = project.build("--no-cache")
    assert hits(log) == 0
    assert "layer packages:" in log and "layer files:" in log  # really built: the layer writer reported
    assert layout_bytes(first) == layout_bytes(second)


def test_a_changed_source_file_misses(project: Project) -> None:
    first, _ = project.build()
    (project.folder / "data.txt").write_text("version 2\n")
    second, log = project.build()
    assert hits(log) == 0
    assert image_files(second, "arm64")["data.txt"].data == b"version 2\n"
    assert manifests(first) != manifests(second)


def test_a_changed_epoch_misses(project: Project) -> None:
    first, _ = project.build()
    project.write(epoch=EPOCH + 1)
    second, log = project.build()
    assert hits(log) == 0
    assert manifests(first) != manifests(second)
    # SOURCE_DATE_EPOCH is an epoch too: it overrides the recipe's, and misses.
    third, log = project.build(env={"SOURCE_DATE_EPOCH": str(EPOCH + 2)})
    assert hits(log) == 0
    assert manifests(third) not in (manifests(first), manifests(second))


def test_a_changed_compression_level_misses(project: Project) -> None:
    project.build()
    project.write(level=9)
    _, log = project.build()
    assert hits(log) == 0
    _, log = project.build()
    assert hits(log) == 2, log


def test_a_changed_locked_package_misses(project: Project, apt_repo: AptRepo, tmp_path: Path) -> None:
    first, _ = project.build()
    for arch in ("amd64", "arm64"):
        newer = FixturePackage("plain", "1.1", arch, files={"usr/bin/plain": b"plain 1.1\n"})
        apt_repo.add(build_deb(newer, tmp_path / "roots", tmp_path / "debs"))
    apt_repo.publish()
    xarch_ok("lock", "-f", str(project.folder / "xarch.yaml"), cache=project.cache)
    assert "version: '1.1'" in (project.folder / "xarch.lock").read_text()
    second, log = project.build()
    assert hits(log) == 0
    assert image_files(second, "amd64")["usr/bin/plain"].data == b"plain 1.1\n"
    assert manifests(first) != manifests(second)


def corrupt_layer_blob(project: Project, output: Path) -> Path:
    """Overwrite the cached copy of the amd64 image's layer; returns its path in the store."""
    manifest_digest = manifests(output)["amd64"]
    blobs = output / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest.removeprefix("sha256:")).read_bytes())
    digest = manifest["layers"][0]["digest"].removeprefix("sha256:")
    cached = project.cache / "sha256" / digest
    assert cached.is_file()
    cached.write_bytes(b"not the layer any more")
    return cached


def test_a_corrupt_cached_blob_is_detected_and_the_image_rebuilt(project: Project) -> None:
    first, _ = project.build()
    corrupt_layer_blob(project, first)
    second, log = project.build()
    assert "[amd64] no input changed" not in log
    assert "[arm64] no input changed" in log  # only the image with the bad blob is rebuilt
    assert layout_bytes(first) == layout_bytes(second)


def test_the_rebuild_repairs_the_cache(project: Project) -> None:
    first, _ = project.build()
    cached = corrupt_layer_blob(project, first)
    project.build()
    assert cached.read_bytes() != b"not the layer any more"
    third, log = project.build()
    assert hits(log) == 2, log
    assert layout_bytes(first) == layout_bytes(third)


def test_a_changed_file_under_dist_misses(project: Project) -> None:
    (project.folder / "dist").mkdir()
    (project.folder / "dist" / "app.js").write_text("console.log(1)\n")
    recipe = project.folder / "xarch.yaml"
    recipe.write_text(recipe.read_text() + "  - {src: dist/app.js, dst: /srv/app.js}\n")
    project.build()
    (project.folder / "dist" / "app.js").write_text("console.log(2)\n")
    second, log = project.build()
    assert image_files(second, "amd64")["srv/app.js"].data == b"console.log(2)\n"
    assert hits(log) == 0
