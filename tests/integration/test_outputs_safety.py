"""Outputs never destroy (issue 10, item 6): what `-o` may replace, and leftovers of killed builds.

Every refusal is checked through the real CLI: exit 2, one line naming the output, nothing
touched. The leftover tests kill a real build (SIGKILL) while it writes, then build again.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.hello import REPO, run_xarch
from xarch.oci.atomic import atomic_dir, atomic_file, remove_leftovers


def tiny_recipe(folder: Path, size: int = 1000) -> Path:
    """A recipe of one file per platform (no stages, no packages): builds in a second, offline."""
    for arch in ("amd64", "arm64"):
        (folder / "bin" / arch).mkdir(parents=True, exist_ok=True)
        (folder / "bin" / arch / "blob").write_bytes(os.urandom(size))
    recipe = folder / "xarch.yaml"
    recipe.write_text("name: tiny\nplatforms: [amd64, arm64]\nepoch: 1\nfiles:\n"
                      "  - src: bin/{arch}/blob\n    dst: /blob\n")
    return recipe


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(result: subprocess.CompletedProcess[str], output: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xarch: error: --output ") and output in lines[0], lines
    assert "Traceback" not in result.stderr


def test_a_folder_that_is_not_a_layout_is_refused(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "r")
    data = tmp_path / "data"
    data.mkdir()
    (data / "thesis.tex").write_text("years of work")
    (data / "index.json").write_text("{}")  # index.json alone does not make a layout
    before = tree(tmp_path)
    refused(run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{data}"), f"oci:{data}")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("which", ["recipe folder", "folder above the recipe", "recipe file", "lock file"])
def test_the_recipe_and_folders_holding_it_are_refused(tmp_path: Path, which: str) -> None:
    recipe = tiny_recipe(tmp_path / "project" / "r")
    (recipe.parent / "oci-layout").write_text("{}")  # even looking like a layout does not help
    (recipe.parent / "index.json").write_text("{}")
    (recipe.parent / "xarch.lock").write_text("lock")
    output = {"recipe folder": f"oci:{recipe.parent}",
              "folder above the recipe": f"oci:{tmp_path / 'project'}",
              "recipe file": f"oci-archive:{recipe}",
              "lock file": f"docker-archive:{recipe.parent / 'xarch.lock'}"}[which]
    before = tree(tmp_path)
    refused(run_xarch("build", "-f", str(recipe.parent), "-q", "-o", output, "--docker-platform", "amd64"),
            output)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("output", ["oci:.", "oci:..", "oci:./", "oci-archive:.", "oci:sub/.."])
def test_the_current_folder_and_above_are_refused(tmp_path: Path, output: str) -> None:
    recipe = tiny_recipe(tmp_path / "r")
    work = tmp_path / "work" / "here"
    (work / "sub").mkdir(parents=True)
    (work / "mine.txt").write_text("mine")
    before = tree(tmp_path)
    refused(run_xarch("build", "-f", str(recipe), "-q", "-o", output, cwd=work), output)
    assert tree(tmp_path) == before
    assert not [p for p in tmp_path.rglob("*") if ".old-" in p.name or ".tmp-" in p.name]


def test_an_oci_output_onto_a_regular_file_is_refused(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "r")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    refused(run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{notes}"), f"oci:{notes}")
    assert notes.read_text() == "keep me"
    link = tmp_path / "link"
    link.symlink_to(recipe.parent)
    refused(run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{link}"), "is a symbolic link")
    assert link.is_symlink() and recipe.is_file()
    folder = tmp_path / "folder"
    folder.mkdir()
    output = f"oci-archive:{folder}"
    refused(run_xarch("build", "-f", str(recipe), "-q", "-o", output), output)
    assert folder.is_dir()


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive"])
def test_an_archive_onto_a_fifo_or_socket_is_refused(tmp_path: Path, kind: str) -> None:
    """Found by the new-user attack: a FIFO at the archive's path was replaced by a file."""
    import socket
    import stat

    recipe = tiny_recipe(tmp_path / "r")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(run_xarch("build", "-f", str(recipe), "-q", "--docker-platform", "amd64", "-o", f"{kind}:{fifo}"),
            "not a regular file")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        refused(run_xarch("build", "-f", str(recipe), "-q", "-o", f"{kind}:{tmp_path / 'sock'}"),
                "not a regular file")
        assert stat.S_ISSOCK((tmp_path / "sock").lstat().st_mode)


def test_a_layout_an_empty_folder_and_a_new_path_are_written(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "r")
    empty, new = tmp_path / "empty", tmp_path / "new" / "layout"
    empty.mkdir()
    for target in (empty, new, new):  # the last one replaces the layout the second wrote
        result = run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{target}")
        assert result.returncode == 0, result.stderr
        assert (target / "oci-layout").is_file() and (target / "index.json").is_file()
    assert tree(empty) == tree(new)


def _kill_while_writing(recipe: Path, target: Path) -> None:
    """Start a build into oci:TARGET and SIGKILL it once its staging folder holds a blob."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "xarch.cli", "build", "-f", str(recipe), "-q",
                                "-o", f"oci:{target}"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if list(target.parent.glob(f".{target.name}.tmp-*/blobs/sha256/*")):
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        else:
            pytest.fail("the build finished before it could be killed")
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_the_next_build_removes_what_a_killed_build_left(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "big", 30_000_000)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".layout.tmp-notmine").mkdir()  # not xarch's name shape: kept
    (out / ".other.tmp-abcdefgh").mkdir()  # another output's name: kept
    target = out / "layout"
    _kill_while_writing(recipe, target)
    leftovers = [p.name for p in out.iterdir()
                 if p.name.startswith(".layout.tmp-") and p.name != ".layout.tmp-notmine"]
    assert leftovers, "SIGKILL should leave the staging folder behind"
    time.sleep(1.1)  # older than LEFTOVER_MIN_AGE
    result = run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{target}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".layout.tmp-notmine", ".other.tmp-abcdefgh", "layout"]


def test_leftovers_of_a_live_writer_and_other_names_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "image.tar"
    dead_dir = tmp_path / ".image.tar.old-dead0000"
    dead_dir.mkdir()
    (dead_dir / "x").write_text("old output on its way out")
    dead_file = tmp_path / ".image.tar.tmp-dead_111"
    dead_file.write_bytes(b"half")
    live = tmp_path / ".image.tar.tmp-live2222"
    live.write_bytes(b"being written")
    unrelated = [tmp_path / ".image.tar.tmp-short", tmp_path / "image.tar.tmp-abcdefgh",
                 tmp_path / ".image.tar.bak-abcdefgh"]
    for path in unrelated:
        path.write_text("not xarch's")
    old = time.time() - 60
    for path in (dead_dir, dead_file, live, *unrelated):
        os.utime(path, (old, old))
    # Another process writing: it holds the flock as atomic_file does.
    script = (f"import fcntl, os, time\nfd = os.open({str(live)!r}, os.O_RDONLY)\n"
              "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with atomic_file(target) as handle:
            handle.write(b"new")
        assert target.read_bytes() == b"new"
        assert not dead_dir.exists() and not dead_file.exists()
        assert live.read_bytes() == b"being written"
        assert all(path.exists() for path in unrelated)
    finally:
        holder.kill()
        holder.wait()
    assert remove_leftovers(target) == [live]  # its writer is gone now


def test_a_fresh_staging_entry_is_not_taken_for_a_leftover(tmp_path: Path) -> None:
    target = tmp_path / "layout"
    with atomic_dir(target) as staging:
        fd = os.open(staging, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):  # held by this (live) writer
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        assert remove_leftovers(target) == []
        (staging / "f").write_text("f")
    assert (target / "f").read_text() == "f"


def test_atomic_writers_refuse_dot_and_dot_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w").mkdir()
    monkeypatch.chdir(tmp_path / "w")
    for name in (".", "..", "sub/.."):
        with pytest.raises(ValueError), atomic_dir(Path(name)):
            pass
        with pytest.raises(ValueError), atomic_file(Path(name)):
            pass
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["w"]
