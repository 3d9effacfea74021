"""`verify --against`: a rebuild's digests lined up with a registry's (or a layout's) index."""
# Fixtures are imported from tests/support and then named as arguments:
# ruff: noqa: F811

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tests.support.registry import Registry, make_layout, registry  # noqa: F401 (fixtures)
from xarch.registry.against import (
    DIFFERS,
    INDEX,
    NOT_PUBLISHED,
    NOT_REBUILT,
    SAME,
    print_against,
    published_side,
    verify_against,
)
from xarch.registry.push import push_layout


def test_matches_and_mismatches(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    pushed = push_layout(layout.path, f"{registry.host}/demo/app:v1")
    local = published_side(str(layout.path))  # what a rebuild into an OCI layout gives
    assert local == {**pushed.manifests, INDEX: pushed.digest}

    report = verify_against(local, f"{registry.host}/demo/app:v1")
    assert report.identical
    assert [(r.platform, r.status) for r in report.rows] == [
        ("linux/amd64", SAME), ("linux/arm64", SAME), (INDEX, SAME)]

    changed = {**local, "linux/arm64": "sha256:" + "0" * 64}
    report = verify_against(changed, f"{registry.host}/demo/app:v1")
    assert not report.identical
    assert [r.status for r in report.rows] == [SAME, DIFFERS, SAME]
    out = io.StringIO()
    print_against(report, False, Console(file=out, width=200))
    assert "DIFFERS" in out.getvalue() and "does NOT match" in out.getvalue()


def test_subset_rebuild_and_unpublished_platform(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    push_layout(layout.path, f"{registry.host}/demo/app:v1")
    local = published_side(str(layout.path))

    only_amd64 = {"linux/amd64": local["linux/amd64"]}
    report = verify_against(only_amd64, f"{registry.host}/demo/app:v1")
    rows = [(r.platform, r.status) for r in report.rows]
    assert rows == [("linux/amd64", SAME), ("linux/arm64", NOT_REBUILT)]
    assert report.identical  # a platform not rebuilt is shown, not failed

    extra = {**local, "linux/arm/v7": "sha256:" + "1" * 64}
    report = verify_against(extra, f"{registry.host}/demo/app:v1")
    assert not report.identical
    assert ("linux/arm/v7", NOT_PUBLISHED) in [(r.platform, r.status) for r in report.rows]
    assert INDEX not in [r.platform for r in report.rows]  # different platform sets: no index verdict


def test_against_a_layout_folder(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    other = make_layout(tmp_path / "other", ["amd64", "arm64"], seed=2)
    assert verify_against(published_side(str(layout.path)), str(layout.path)).identical
    report = verify_against(published_side(str(other.path)), str(layout.path))
    assert {r.status for r in report.rows} == {DIFFERS}
