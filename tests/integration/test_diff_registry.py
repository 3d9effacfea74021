"""`xarch diff` with a registry reference on one side: a real docker-registry on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.oci_images import make_artifact, replace_entry
from tests.support.registry import Registry
from xarch.diff import DiffError, diff_paths
from xarch.oci.layout import write_layout
from xarch.registry.push import push_layout


def test_registry_reference_against_layouts(registry: Registry, tmp_path: Path) -> None:
    write_layout(make_artifact(), tmp_path / "a")
    write_layout(make_artifact(change=replace_entry("etc/motd", data=b"changed\n")), tmp_path / "b")
    push_layout(tmp_path / "a", f"{registry.host}/demo/diff:1.0")
    reference = f"{registry.host}/demo/diff:1.0"

    same = diff_paths(reference, str(tmp_path / "a"))
    assert same.identical, same.differences
    assert same.digests["index"][0] == same.digests["index"][1]

    different = diff_paths(f"docker://{reference}", str(tmp_path / "b"))
    assert {(d.platform, d.item, d.field) for d in different.differences} >= {
        ("linux/amd64", "etc/motd", "content"), ("linux/arm64/v8", "etc/motd", "content")}


def test_missing_tag_is_one_clear_error(registry: Registry, tmp_path: Path) -> None:
    write_layout(make_artifact(), tmp_path / "a")
    with pytest.raises(DiffError) as caught:
        diff_paths(f"registry:{registry.host}/demo/none:nope", str(tmp_path / "a"))
    assert "demo/none" in str(caught.value)


def test_a_layout_and_the_image_it_was_pushed_as_under_another_tag_are_identical(
        registry: Registry, tmp_path: Path) -> None:
    """A new user's first round trip: push a layout (tag "1.0") as "release", diff the two. The tag
    names the image and is in no digest, so it is no difference (a layout against a layout still
    compares tags)."""
    write_layout(make_artifact(), tmp_path / "a")
    push_layout(tmp_path / "a", f"{registry.host}/demo/diff:release")
    result = diff_paths(f"{registry.host}/demo/diff:release", str(tmp_path / "a"))
    assert result.identical, result.differences
