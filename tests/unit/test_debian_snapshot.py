"""`xarch lock --snapshot` (xarch/sources/debian/snapshot.py): where snapshot timestamps are listed,
reading them from a listing page, and rewriting only the recipe's snapshot values (comments,
quotes and every other byte kept)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xarch.sources.debian.config import DebianSource
from xarch.sources.debian.errors import LockError
from xarch.sources.debian.snapshot import check_timestamp, listing_url, rewrite, timestamps_in, write_recipe

RECIPE = """\
name: app  # the app
sources:
  debian:
    - suites: [bookworm]
      snapshot: "20240101T000000Z"   # pinned
    - suites: [bookworm-security]
      mirror: https://mirror.example/snap/{snapshot}/debian-security
      snapshot: 20240101T000000Z
    - suites: [extra]
      snapshot: null
"""


def test_listing_urls() -> None:
    assert listing_url(DebianSource(suites=["bookworm"], snapshot="20240101T000000Z")) == (
        "http://snapshot.debian.org/archive/debian/")
    templated = DebianSource(suites=["x"], mirror="https://m.example/snap/{snapshot}/debian",
                             snapshot="20240101T000000Z")
    assert listing_url(templated) == "https://m.example/snap/"


def test_timestamps_are_read_from_the_links_of_a_listing() -> None:
    page = ('<a href="20240102T030405Z/">20240102T030405Z</a> <a href="20231231T000000Z/">x</a>'
            '<a href="20240102T030405Z/">again</a> 20990101T000000Z (not a link)')
    assert timestamps_in(page) == ["20231231T000000Z", "20240102T030405Z"]


def test_a_timestamp_must_look_like_one() -> None:
    assert check_timestamp("20250520T000000Z") == "20250520T000000Z"
    with pytest.raises(LockError, match="not `latest` nor a timestamp"):
        check_timestamp("2025-05-20")


def test_only_the_snapshot_values_change() -> None:
    changed = rewrite(RECIPE, "20250520T000000Z")
    assert changed == RECIPE.replace('"20240101T000000Z"', '"20250520T000000Z"').replace(
        "snapshot: 20240101T000000Z", "snapshot: 20250520T000000Z")
    with pytest.raises(LockError, match="sets no sources.debian snapshot"):
        rewrite("name: app\nsources:\n  debian: {suites: [bookworm]}\n", "20250520T000000Z")


def test_the_recipe_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "xarch.yaml"
    path.write_text(RECIPE)
    os.chmod(path, 0o640)
    write_recipe(path, rewrite(RECIPE, "20250520T000000Z"))
    assert "20250520T000000Z" in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["xarch.yaml"]
