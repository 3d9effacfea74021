"""A build with `trace:` keeps only what xarch.trace recorded for the platform, trace.keep and the
config's needs (xarch/trace/apply.py), on a recipe and a record file written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from xarch.oci.tree import Entry, Tree
from xarch.recipe import load
from xarch.trace.apply import apply_trace, command_of, dropped_by_origin, needs_of, record_digest
from xarch.trace.record import FILE_NAME, TraceFileError

RECIPE = """\
name: traced
platforms: [amd64]
config:
  entrypoint: [/usr/bin/app]
  cmd: [--serve]
  user: "1000"
  workdir: /srv
trace:
  keep: ["/usr/share/zoneinfo/**"]
"""


def tree() -> Tree:
    made = Tree()
    for path, data, origin in (
            ("usr/bin/app", b"\x7fELF", "the recipe"), ("usr/lib/libused.so", b"u" * 10, "libc6"),
            ("usr/lib/libunused.so", b"n" * 100, "libc6"), ("usr/share/doc/x", b"d" * 7, "docs"),
            ("usr/share/zoneinfo/UTC", b"z", "tzdata"), ("etc/passwd", b"p", "base-passwd"),
            ("etc/group", b"g", "base-passwd")):
        made.add_parents(path)
        made.add(Entry(path, "file", 0o644, data=data, origin=origin))
    made.add_parents("srv/x")
    return made


def test_the_recorded_paths_the_keep_globs_and_the_config_needs_stay(tmp_path: Path) -> None:
    (tmp_path / "xarch.yaml").write_text(RECIPE)
    (tmp_path / FILE_NAME).write_text("version: 1\nplatforms:\n  amd64: [/usr/lib/libused.so]\n")
    loaded = load(tmp_path / "xarch.yaml")
    assert command_of(loaded) == ["/usr/bin/app", "--serve"]
    assert needs_of(loaded).paths == ("/usr/bin/app", "/etc/passwd", "/etc/group", "/srv")
    assert record_digest(loaded) is not None
    image = tree()
    result = apply_trace(loaded, image, "amd64")
    assert sorted(entry.path for entry in result.dropped) == ["usr/lib/libunused.so", "usr/share/doc",
                                                              "usr/share/doc/x"]
    assert "usr/share/zoneinfo/UTC" in image and "usr/lib/libused.so" in image and "srv" in image
    assert result.kept == len(image.entries)
    assert dropped_by_origin(result.dropped) == [("libc6", 1, 100), ("docs", 1, 7)]


def test_a_record_without_the_platform_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "xarch.yaml").write_text(RECIPE)
    (tmp_path / FILE_NAME).write_text("version: 1\nplatforms:\n  arm64: [/usr/bin/app]\n")
    with pytest.raises(TraceFileError) as caught:
        apply_trace(load(tmp_path / "xarch.yaml"), tree(), "amd64")
    assert str(caught.value).startswith(str(tmp_path / FILE_NAME)) and "amd64" in str(caught.value)


def test_without_a_record_the_digest_is_none_and_the_build_says_why(tmp_path: Path) -> None:
    (tmp_path / "xarch.yaml").write_text(RECIPE)
    loaded = load(tmp_path / "xarch.yaml")
    assert record_digest(loaded) is None
    with pytest.raises(TraceFileError):
        apply_trace(loaded, tree(), "amd64")
