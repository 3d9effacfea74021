"""`xarch inspect --platform P --config|--files|--packages` and `xarch diff`'s unified diffs of
small text files, on images xarch builds from files-only recipes (no stage, so fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, xarch, xarch_ok

STATUS = """\
Package: zlib1g
Status: install ok installed
Architecture: arm64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: removed-one
Status: deinstall ok config-files
Architecture: arm64
Version: 1.0
"""


def build(folder: Path, notes: str, binary: bytes = b"\x7fELF\0\x01") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text(notes)
    (folder / "status").write_text(STATUS)
    (folder / "blob.bin").write_bytes(binary)
    (folder / "xarch.yaml").write_text(f"""\
name: views
platforms: [amd64, arm64]
epoch: {EPOCH}
config:
  labels: {{purpose: test}}
files:
  - {{src: notes.txt, dst: /etc/notes.txt}}
  - {{src: blob.bin, dst: /usr/lib/blob.bin}}
  - {{src: status, dst: /var/lib/dpkg/status, platforms: [arm64]}}
""")
    out = folder / "out"
    xarch_ok("build", "-f", str(folder / "xarch.yaml"), "-q", "-o", f"oci:{out}", cache=folder / "cache")
    return out


NOTES = "".join(f"line {n}\n" for n in range(1, 15))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("views")
    a = build(base / "a", NOTES)
    b = build(base / "b", NOTES.replace("line 7\n", "line 7, changed\n"), binary=b"\x7fELF\0\x02")
    return a, b


def test_inspect_one_platform_files_config_packages(layouts: tuple[Path, Path]) -> None:
    a, _ = layouts
    files = xarch_ok("inspect", str(a), "--platform", "arm64", "--files", cache=a.parent / "cache").stdout
    assert "/var/lib/dpkg/status" in files and "/etc/notes.txt" in files
    amd64 = json.loads(xarch_ok("inspect", str(a), "--platform", "amd64", "--files", "--json",
                                cache=a.parent / "cache").stdout)
    paths = [entry["path"] for entry in amd64["files"]]
    assert "/etc/notes.txt" in paths and "/var/lib/dpkg/status" not in paths
    config = json.loads(xarch_ok("inspect", str(a), "--platform", "arm64", "--config", "--json",
                                 cache=a.parent / "cache").stdout)
    assert config["architecture"] == "arm64" and config["config"]["Labels"] == {"purpose": "test"}
    packages = json.loads(xarch_ok("inspect", str(a), "--platform", "linux/arm64", "--packages", "--json",
                                   cache=a.parent / "cache").stdout)
    assert packages["packages"] == [{"name": "zlib1g", "version": "1:1.2.13.dfsg-1", "architecture": "arm64",
                                     "source": "zlib"}]
    table = xarch_ok("inspect", str(a), "--platform", "arm64", "--packages", cache=a.parent / "cache").stdout
    assert "zlib1g" in table and "removed-one" not in table


def test_inspect_needs_a_platform_when_there_are_several(layouts: tuple[Path, Path]) -> None:
    a, _ = layouts
    result = xarch("inspect", str(a), "--files", cache=a.parent / "cache")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "choose one with --platform" in line and "linux/amd64, linux/arm64" in line
    result = xarch("inspect", str(a), "--platform", "riscv64", "--config", cache=a.parent / "cache")
    assert result.returncode == 2 and "no image for riscv64" in result.stderr


def test_diff_prints_a_unified_diff_for_a_small_text_file(layouts: tuple[Path, Path]) -> None:
    a, b = layouts
    result = xarch("diff", str(a), str(b), "--platform", "amd64", cache=a.parent / "cache")
    assert result.returncode == 1, result.stderr
    assert "--- a/etc/notes.txt\n+++ b/etc/notes.txt\n" in result.stdout
    assert "-line 7\n+line 7, changed\n" in result.stdout
    assert " line 6\n" in result.stdout  # context lines, as diff -u
    assert "@@ " in result.stdout and "blob.bin" not in result.stdout.split("@@ ", 1)[1].split("\n", 1)[0]
    report = json.loads(xarch("diff", str(a), str(b), "--json", cache=a.parent / "cache").stdout)
    by_item = {(d["platform"], d["item"]): d for d in report["differences"] if d["field"] == "content"}
    assert "+line 7, changed" in by_item[("linux/amd64", "etc/notes.txt")]["diff"]
    assert by_item[("linux/amd64", "usr/lib/blob.bin")]["diff"] is None  # binary: a digest line only
    assert by_item[("linux/amd64", "usr/lib/blob.bin")]["a"].startswith("sha256:")
