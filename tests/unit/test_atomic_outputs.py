"""Outputs appear whole or not at all (xarch/oci/atomic.py): a failed write leaves the old output
and no staging; a killed writer's leftovers are removed, a live writer's (locked) never are."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from xarch.oci.atomic import LEFTOVER_MIN_AGE, atomic_dir, atomic_file, remove_leftovers


def aged(path: Path) -> Path:
    old = time.time() - LEFTOVER_MIN_AGE - 10
    os.utime(path, (old, old), follow_symlinks=False)
    return path


def test_a_folder_replaces_the_old_one_only_when_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as staging:
        (staging / "index.json").write_text("1")
    assert (target / "index.json").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "index.json").write_text("2")
        raise RuntimeError("the build failed half-way")
    assert (target / "index.json").read_text() == "1"  # the old output, whole
    with atomic_dir(target) as staging:
        (staging / "new").write_text("3")
    assert sorted(os.listdir(target)) == ["new"] and sorted(os.listdir(tmp_path)) == ["out"]


def test_a_file_is_renamed_in_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "image.tar"
    with atomic_file(target) as handle:
        handle.write(b"whole")
    with pytest.raises(OSError), atomic_file(target) as handle:
        handle.write(b"par")
        raise OSError("disk full")
    assert target.read_bytes() == b"whole" and os.listdir(tmp_path) == ["image.tar"]


def test_dot_and_dotdot_are_no_output_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a name of its own"), atomic_dir(tmp_path / ".."):
        pass


def test_a_killed_writers_leftovers_go_and_a_live_writers_stay(tmp_path: Path) -> None:
    target = tmp_path / "out"
    dead = tmp_path / ".out.tmp-abcd1234"
    dead.mkdir()
    (dead / "partial").write_text("x")
    live = tmp_path / ".out.old-live5678"
    live.mkdir()
    young = tmp_path / ".out.tmp-young123"
    young.mkdir()
    unrelated = tmp_path / ".other.tmp-abcd1234"
    unrelated.mkdir()
    for path in (dead, live, unrelated):
        aged(path)
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running build holds its staging
    try:
        assert remove_leftovers(target) == [dead]
    finally:
        os.close(fd)
    assert not dead.exists() and live.exists() and young.exists() and unrelated.exists()
