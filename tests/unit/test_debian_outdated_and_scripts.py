"""Pure parts of `xarch outdated` (xarch/sources/debian/outdated.py: suites, the report's lines
and JSON, snapshot moves) and of running maintainer scripts (xarch/build/runscripts.py:
which scripts run in which order, and the shell text that runs them)."""

from __future__ import annotations

import subprocess

from tests.support.needs import need_tool
from xarch.build.runscripts import INFO, calls, shell_text
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.config import DebianSource
from xarch.sources.debian.lock import LockedPackage
from xarch.sources.debian.outdated import Outdated, OutdatedReport, is_security_suite, moved, native_of


def test_security_suites() -> None:
    assert is_security_suite("bookworm-security") and is_security_suite("buster/updates")
    assert not is_security_suite("bookworm-updates") and not is_security_suite("bookworm")


def test_an_all_package_is_installed_for_the_build_platforms_architecture() -> None:
    assert native_of("arm64") == "arm64"
    assert native_of("amd64->arm64") == "amd64"  # a cross root's key: the build side


def test_the_report_in_lines_and_json() -> None:
    report = OutdatedReport({
        "arm64": [Outdated("openssl", "arm64", "3.0.1", "3.0.2", "bookworm-security", True, ["image"]),
                  Outdated("tzdata", "all", "2024a", "2024b", "bookworm-updates", False, ["image", "build"])],
        "amd64": [],
    }, ["bookworm", "bookworm-security"])
    assert report.lines() == [
        "amd64: up to date",
        "arm64:",
        "  openssl 3.0.1 → 3.0.2 (bookworm-security, security)",
        "  tzdata 2024a → 2024b (bookworm-updates) [image, build]",
    ]
    summary = report.to_json()
    assert (summary["outdated"], summary["security"]) == (2, 1)
    assert list(summary["platforms"]) == ["amd64", "arm64"]


def test_only_snapshot_pinned_archives_move_to_another_snapshot() -> None:
    pinned = DebianSource(suites=["bookworm"], snapshot="20240101T000000Z")
    live = DebianSource(suites=["bookworm-security"])
    assert moved([pinned, live], None) == [pinned, live]
    first, second = moved([pinned, live], "20250101T000000Z")
    assert first.snapshot == "20250101T000000Z" and second is live
    assert pinned.snapshot == "20240101T000000Z"  # a copy: the recipe's source is unchanged


def package(name: str, arch: str = "arm64", version: str = "1.0") -> LockedPackage:
    return LockedPackage(name, version, arch, f"pool/main/{name}.deb", 1, "0" * 64, "bookworm")


def scripts_tree(*names: str) -> Tree:
    tree = Tree()
    for name in names:
        tree.add_parents(f"{INFO}/{name}")
        tree.add(Entry(f"{INFO}/{name}", "file", 0o755, data=b"#!/bin/sh\n"))
    return tree


def test_every_preinst_runs_before_any_postinst_in_lock_order() -> None:
    tree = scripts_tree("b.postinst", "a:arm64.preinst", "a.preinst", "a:arm64.postinst", "c.postrm")
    assert calls(tree, [package("a"), package("b"), package("c")]) == [
        ("a", "arm64", f"/{INFO}/a:arm64.preinst", ["preinst", "install"]),  # the arch-qualified one
        ("a", "arm64", f"/{INFO}/a:arm64.postinst", ["postinst", "configure", ""]),
        ("b", "arm64", f"/{INFO}/b.postinst", ["postinst", "configure", ""]),
    ]


def test_the_shell_text_is_valid_sh_with_every_word_quoted() -> None:
    tree = scripts_tree("x.postinst")
    text = shell_text(tree, [package("dpkg", version="1.21.22'; rm -rf /"), package("x")])
    assert "DPKG_RUNNING_VERSION='1.21.22'\"'\"'; rm -rf /'" in text
    assert text.splitlines()[-1] == f"run x arm64 /{INFO}/x.postinst postinst configure ''"
    checked = subprocess.run([need_tool("sh"), "-n"], input=text, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
