"""Unit tests of the parts that make stage roots (xarch/sources/debian/pkgtrees.py,
xarch/run/stageroot.py, xarch/run/overlay.py) that need no mount, namespace or .deb: keys, digests,
the recorder. Real .debs, overlay mounts and a hostile sandboxed step are in
tests/integration/test_pkgtrees.py."""

from __future__ import annotations

from pathlib import Path

from xarch.oci.tree import Entry, Tree
from xarch.run import overlay
from xarch.run.stageroot import Recorder, record_key
from xarch.sources.debian.pkgtrees import known_sha256, tree_digest, tree_key


def _tree(mode: int = 0o644, data: bytes = b"x\n") -> Tree:
    tree = Tree()
    tree.add(Entry("etc", "dir", 0o755))
    tree.add(Entry("etc/a", "file", mode, data=data))
    tree.add(Entry("etc/l", "symlink", 0o777, linkname="a"))
    return tree


def test_a_package_tree_key_names_the_deb_and_the_owner() -> None:
    deb = "a" * 64
    assert tree_key(deb, 0) == tree_key(deb, 0)
    assert len({tree_key(deb, 0), tree_key("b" * 64, 0), tree_key(deb, 1000)}) == 3


def test_a_tree_digest_follows_content_and_mode_not_owner() -> None:
    base = tree_digest(_tree())
    assert base == tree_digest(_tree())
    assert base != tree_digest(_tree(mode=0o600)) and base != tree_digest(_tree(data=b"y\n"))
    owned = _tree()
    owned.add(Entry("etc/a", "file", 0o644, uid=1000, gid=1000, data=b"x\n"))  # replaces the entry
    assert tree_digest(owned) == base  # a stage root on disk has no image owners


def test_only_cached_files_are_vouched_for(tmp_path: Path) -> None:
    assert known_sha256(tmp_path / "not-from-the-cache") is None


def test_a_root_record_key_is_stable_and_covers_its_material() -> None:
    material = {"stage": "build", "packages": [["gcc", "12", "amd64", "f" * 64]], "epoch": 1}
    assert record_key(material) == record_key(dict(material))
    assert record_key(material) != record_key({**material, "epoch": 2})


def test_the_recorder_passes_lines_on_and_keeps_them() -> None:
    class Sink:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, message: str) -> None:
            self.lines.append(f"info {message}")

        def detail(self, message: str) -> None:
            self.lines.append(f"detail {message}")

        def scripts(self, message: str) -> None:
            self.lines.append(f"scripts {message}")

    sink = Sink()
    recorder = Recorder(sink)
    recorder.info("fetched 3 packages")
    recorder.detail("unpacked")
    assert sink.lines == ["info fetched 3 packages", "detail unpacked"]
    assert recorder.said == [("info", "fetched 3 packages"), ("detail", "unpacked")]


def test_no_overlay_outside_a_build(tmp_path: Path) -> None:
    """Outside `stage_mounts` this process has no private mount namespace: nothing is mounted, and
    a folder is no overlay of ours."""
    assert overlay.upper_of(tmp_path) is None
    assert overlay.mount(tmp_path / "l", tmp_path / "u", tmp_path / "w", tmp_path / "t") is False
