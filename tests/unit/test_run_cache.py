"""The step cache stores a step's delta and replays it into the exact same root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support.rootfs_helpers import copy_rootfs
from xarch import platforms
from xarch.run.cache import Snapshot, StepCache, folder_digest, step_key
from xarch.run.sandbox import host_owner
from xarch.run.steps import StepSpec, run_stage_steps

MESSY_STEP = """
echo kept > /kept.txt
mkdir -p /opt/app/lib && echo data > /opt/app/lib/data && chmod 640 /opt/app/lib/data
echo same-size-a > /same.txt
mkdir /was-a-dir && touch /was-a-dir/inside
rm -rf /to-delete
ln /kept.txt /kept-link.txt
ln -s ../kept.txt /opt/relative-link
"""


def _owners(root: Path) -> dict[str, tuple[int, int, int]]:
    result = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        result[path.relative_to(root).as_posix()] = (info.st_uid, info.st_gid, info.st_mode)
    return result


def test_replayed_steps_rebuild_the_same_tree(host_rootfs: Path, tmp_path: Path) -> None:
    (host_rootfs / "to-delete" / "deep").mkdir(parents=True)
    (host_rootfs / "to-delete" / "deep" / "file").write_text("x")
    (host_rootfs / "same.txt").write_text("same-size-b\n")
    os.chown(host_rootfs / "same.txt", 1234, 5678)
    source = tmp_path / "src"
    source.mkdir()
    pristine = copy_rootfs(host_rootfs, tmp_path / "pristine")
    steps = [
        StepSpec(MESSY_STEP),
        # The second step turns a directory into a file and edits a file in place.
        StepSpec("rm -rf /was-a-dir && echo now-a-file > /was-a-dir && echo more >> /opt/app/lib/data"),
    ]
    cache = StepCache(tmp_path / "steps")
    host = platforms.host()
    run_stage_steps(steps, host_rootfs, host, "native", source, 0, cache, lambda line: None)
    replayed = copy_rootfs(pristine, tmp_path / "replayed")
    lines: list[str] = []
    run_stage_steps(steps, replayed, host, "native", source, 0, cache, lines.append)
    assert lines == ["build step 1/2: cached", "build step 2/2: cached"]
    assert folder_digest(replayed) == folder_digest(host_rootfs)
    assert _owners(replayed) == _owners(host_rootfs)
    assert (replayed / "same.txt").read_text() == "same-size-a\n"
    # Written in place: the owner stays the sandbox's (hand_over gave it the whole root).
    assert (replayed / "same.txt").stat().st_uid == host_owner()
    assert (replayed / "kept.txt").stat().st_ino == (replayed / "kept-link.txt").stat().st_ino
    assert not (replayed / "to-delete").exists()


def test_an_entry_holds_only_what_the_step_changed(host_rootfs: Path, tmp_path: Path) -> None:
    (host_rootfs / "big").write_bytes(os.urandom(4 << 20))
    before = Snapshot.of(host_rootfs)
    (host_rootfs / "small").write_text("small\n")
    cache = StepCache(tmp_path / "steps")
    cache.save("k", host_rootfs, before, {})
    assert (cache.entry("k") / "changes.tar").stat().st_size < 64 << 10
    assert cache.has("k")
    assert [p.name for p in cache.root.iterdir()] == ["k"]  # no temporary left behind


def test_a_damaged_entry_is_dropped_and_never_replayed(host_rootfs: Path, tmp_path: Path) -> None:
    before = Snapshot.of(host_rootfs)
    (host_rootfs / "made-by-the-step").write_text("x" * 5000)
    cache = StepCache(tmp_path / "steps")
    cache.save("k", host_rootfs, before, {})
    assert cache.usable("k")
    changes = cache.entry("k") / "changes.tar"
    data = bytearray(changes.read_bytes())
    data[1024] ^= 0x01  # inside the file's content: tar would replay it without complaint
    changes.write_bytes(bytes(data))
    assert not cache.usable("k")
    assert not cache.entry("k").exists()  # so the step runs again and saves a whole entry


def test_keys_change_with_every_input() -> None:
    base: dict[str, Any] = dict(inputs={"lock": "a"}, source_digest="s", step="make", network=False,
                                previous=None, platform="linux/arm64", strategy="cross",
                                env={"SOURCE_DATE_EPOCH": "0"})
    key = step_key(**base)
    variations = [("inputs", {"lock": "b"}), ("source_digest", "t"), ("step", "make all"), ("network", True),
                  ("previous", "p"), ("platform", "linux/amd64"), ("strategy", "emulate"),
                  ("env", {"SOURCE_DATE_EPOCH": "1"})]
    assert key == step_key(**base)
    for field, value in variations:
        assert step_key(**{**base, field: value}) != key, field
