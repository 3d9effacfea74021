"""Keeping locks fresh against the hermetic signed archive: `xarch outdated`, `xarch lock --update
[PKG…]` (the change report, the minimal lock diff), `xarch lock --snapshot`, and their bad inputs.

The archive starts with version 1 of every package; the tests then publish newer versions in
the main suite and a fix in a separate security archive (`stable-security`), as Debian does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, GpgKey, RepoServer
from tests.support.fresh_archive import Archive, recipe_text
from tests.support.inprocess import Outcome, xarch_in_process
from tests.support.needs import need_tool
from xarch.sources.debian import http
from xarch.sources.debian.lock import Lock

pytest_plugins = ["tests.support.debian_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, archive: Archive, debian_keyring: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "project"
    folder.mkdir()
    url = archive.server.url
    (folder / "xarch.yaml").write_text(recipe_text(f"{url}/debian", f"{url}/debian-security", debian_keyring))
    ok(xarch_in_process("lock", "-f", str(folder)))
    return folder


def ok(outcome: Outcome) -> Outcome:
    assert outcome.code == 0, outcome.stderr
    return outcome


def versions(folder: Path, platform: str = "amd64") -> dict[str, str]:
    return {p.name: p.version for p in Lock.load(folder / "xarch.lock").entries(platform)}


def doc_transcripts() -> list[str]:
    """The ```text blocks of docs/locks.md, download byte counts masked (they depend on compression)."""
    text = (REPO_ROOT / "docs" / "locks.md").read_text()
    return [masked(body) for body in re.findall(r"^```text\n(.*?)^```$", text, re.M | re.S)]


def masked(output: str) -> str:
    return re.sub(r"download [+-]\d+ bytes", "download ±N bytes", output)


def blocks(text: str) -> dict[tuple[str, str], str]:
    """(platform key, package name) -> the lines of that package's entry in a lock's text."""
    found: dict[tuple[str, str], list[str]] = {}
    platform, current = "", None
    for line in text.splitlines():
        if line.startswith("    ") and not line.startswith("    -") and not line.startswith("     ") \
                and line.rstrip().endswith(":"):
            platform = line.strip().rstrip(":")
        elif line.startswith("    - "):
            current = [line]
            found[(platform, "?")] = current  # named once its name line is read
        elif line.startswith("      ") and current is not None:
            current.append(line)
        else:
            current = None
        if current is not None and line.strip().lstrip("- ").startswith("name: "):
            name = line.split("name: ", 1)[1]
            found[(platform, name)] = found.pop((platform, "?"))
    return {key: "\n".join(lines) for key, lines in found.items()}


def test_outdated_lists_newer_and_security_versions(project: Path, archive: Archive) -> None:
    fresh = ok(xarch_in_process("outdated", "-f", str(project)))
    assert fresh.stdout.splitlines() == ["amd64: up to date", "arm64: up to date"]

    archive.publish_newer()
    archive.publish_security_fix()
    result = xarch_in_process("outdated", "-f", str(project))
    assert result.code == 1, result.stderr
    result.one_error_line("8 locked package(s) have a newer version", "2 from a security suite")
    assert masked(result.stdout) == doc_transcripts()[0]
    amd64 = result.stdout.split("arm64:")[0].splitlines()
    assert amd64 == ["amd64:",
                     "  app 1.0 → 2.0 (stable)",
                     "  libbar 1.0 → 1.0+deb1u1 (stable-security, security)",
                     "  libfoo 1.0 → 2.0 (stable)",
                     "  tool 1.0 → 1.1 (stable)"]

    as_json = xarch_in_process("outdated", "-f", str(project), "--json")
    assert as_json.code == 1
    report = json.loads(as_json.stdout)
    assert report["outdated"] == 8 and report["security"] == 2  # four per platform
    assert report["suites"] == ["stable", "stable-security"]
    by_name = {item["name"]: item for item in report["platforms"]["arm64"]}
    assert by_name["libfoo"] == {"name": "libfoo", "architecture": "arm64", "old": "1.0", "new": "2.0",
                                 "suite": "stable", "security": False, "sets": ["image"]}
    assert by_name["libbar"]["security"] is True and by_name["libbar"]["suite"] == "stable-security"
    assert "base" not in by_name

    # A fix that a point release also folds into the main suite is still a security update.
    for deb in archive.debs["security"]:
        archive.main.add(deb)
    archive.main.publish()
    folded = xarch_in_process("outdated", "-f", str(project))
    assert "  libbar 1.0 → 1.0+deb1u1 (stable-security, security)" in folded.stdout.splitlines()


def test_update_one_package_changes_only_it_and_what_it_needs(project: Path, archive: Archive) -> None:
    lock_file = project / "xarch.lock"
    before = lock_file.read_text()
    archive.publish_newer()
    archive.publish_security_fix()

    result = ok(xarch_in_process("lock", "-f", str(project), "--update", "app"))
    assert masked(result.stdout) == doc_transcripts()[1]
    assert versions(project) == {"app": "2.0", "libfoo": "2.0", "newdep": "1.0",
                                 "tool": "1.0", "libbar": "1.0", "base": "1.0"}
    amd64 = result.stdout.split("arm64:")[0].splitlines()
    assert amd64 == ["amd64:",
                     "  ~ app 1.0 → 2.0",
                     "  ~ libfoo 1.0 → 2.0",
                     "  + newdep 1.0",
                     # 40+100+3+10+5 KiB before, 50+120+7+3+10+5 after (Installed-Size)
                     "  image: installed +37 KiB (158 → 195 KiB), download "
                     f"{amd64[-1].split('download ')[1]}"]
    assert int(amd64[-1].split("download ")[1].split()[0]) > 0

    # The minimal diff: only the entries of app, libfoo and newdep differ; every other entry keeps
    # its bytes, and so do the inputs; the releases record the re-signed InRelease.
    old_blocks, new_blocks = blocks(before), blocks(lock_file.read_text())
    changed = {key for key in set(old_blocks) | set(new_blocks) if old_blocks.get(key) != new_blocks.get(key)}
    assert changed == {(plat, name) for plat in ("amd64", "arm64") for name in ("app", "libfoo", "newdep")}
    assert before.split("packages:")[0].split("inputs:")[1] == \
        lock_file.read_text().split("packages:")[0].split("inputs:")[1]

    # Then everything: tool moves, and libbar takes the security fix.
    report = json.loads(ok(xarch_in_process("lock", "-f", str(project), "--update", "--json")).stdout)
    assert report["changed"] is True and report["snapshot"] is None
    arm64 = report["platforms"]["arm64"]
    assert [(c["name"], c["old"], c["new"]) for c in arm64["upgraded"]] == [
        ("libbar", "1.0", "1.0+deb1u1"), ("tool", "1.0", "1.1")]
    assert arm64["added"] == [] and arm64["removed"] == [] and arm64["downgraded"] == []
    assert arm64["sizes"]["image"]["installed_kib_change"] == 1
    assert ok(xarch_in_process("outdated", "-f", str(project))).stdout.splitlines() == [
        "amd64: up to date", "arm64: up to date"]
    again = ok(xarch_in_process("lock", "-f", str(project), "--update"))
    assert again.stdout.splitlines() == ["amd64: no changes", "arm64: no changes",
                                         "xarch.lock: no package changed"]


def test_old_lock_without_installed_sizes_loads_and_keeps_its_bytes(project: Path, archive: Archive) -> None:
    """A lock written before installed_size was recorded: loads, and an update rewrites only what changed."""
    lock_file = project / "xarch.lock"
    old_style = "".join(line for line in lock_file.read_text().splitlines(keepends=True)
                        if "installed_size:" not in line)
    lock_file.write_text(old_style)
    assert Lock.load(lock_file).entries("amd64")[0].installed_size is None
    archive.publish_newer()
    report = json.loads(ok(xarch_in_process("lock", "-f", str(project), "--update", "tool", "--json")).stdout)
    assert [c["name"] for c in report["platforms"]["amd64"]["upgraded"]] == ["tool"]
    # The old entries' sizes come from the archive, which still has those versions.
    assert report["platforms"]["amd64"]["sizes"]["image"]["installed_size_unknown"] == 0
    new_blocks = blocks(lock_file.read_text())
    changed = {key for key, text in blocks(old_style).items() if new_blocks.get(key) != text}
    assert changed == {("amd64", "tool"), ("arm64", "tool")}
    assert "installed_size: 3" in new_blocks[("amd64", "tool")]


def test_example_locks_still_load_with_their_bytes() -> None:
    for path in sorted(REPO_ROOT.glob("examples/*/xarch.lock")):
        text = path.read_text()
        # The Debian part is Lock's; a python: section (xarch/sources/python) is another reader's.
        text = re.sub(r"\npython:\n(?:[ -].*\n)*", "\n", text)
        assert Lock.load(path).dumps() == text.split("\n", 1)[1], path


def test_bad_input_and_unreachable_archive(project: Path, archive: Archive, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lock_file = project / "xarch.lock"
    before = lock_file.read_bytes()
    unknown = xarch_in_process("lock", "-f", str(project), "--update", "no-such-package")
    assert unknown.code == 2
    unknown.one_error_line("--update no-such-package", "xarch.lock pins no package named no-such-package")
    assert len(unknown.stderr.splitlines()) == 1  # refused before any download
    names_alone = xarch_in_process("lock", "-f", str(project), "app")
    assert names_alone.code == 2
    names_alone.one_error_line("need --update")
    assert lock_file.read_bytes() == before

    no_report = xarch_in_process("lock", "-f", str(project), "--json")
    assert no_report.code == 2
    no_report.one_error_line("--json needs --update or --snapshot")
    assert lock_file.read_bytes() == before

    monkeypatch.setattr(http, "BACKOFF", 0.01)
    closed = RepoServer(tmp_path)  # a port that was listening, then closed
    closed.stop()
    recipe = project / "xarch.yaml"
    recipe.write_text(recipe.read_text().replace(archive.server.url, closed.url))
    for args in (("outdated",), ("lock", "--update", "app")):
        result = xarch_in_process(*args, "-f", str(project))
        assert result.code == 4, (args, result.stderr)
        result.one_error_line("cannot fetch", closed.url)
    assert lock_file.read_bytes() == before


# ---- time-pinned archives -----------------------------------------------------------------------

EARLY, LATE = "20250101T000000Z", "20250201T000000Z"


@pytest.fixture
def snapshots(tmp_path: Path, debian_key: GpgKey, debs: dict[str, list[Path]]) -> Iterator[RepoServer]:
    """A snapshot.debian.org-like layout: archive/debian/TIMESTAMP/{dists,pool}, the folder listed."""
    need_tool("apt-ftparchive")
    for stamp, sets in ((EARLY, ["first"]), (LATE, ["first", "newer"])):
        repo = AptRepo(tmp_path / "snap" / "archive" / "debian" / stamp, debian_key)
        for name in sets:
            for deb in debs[name]:
                repo.add(deb)
        repo.publish()
    server = RepoServer(tmp_path / "snap")
    yield server
    server.stop()


def test_snapshot_moves_the_pin_in_the_recipe(tmp_path: Path, snapshots: RepoServer, debian_keyring: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "snapshot-project"
    folder.mkdir()
    recipe = folder / "xarch.yaml"
    text = f"""\
name: pinned
platforms: [amd64]
sources:
  debian:
    suites: [stable]
    mirror: {snapshots.url}/archive/debian/{{snapshot}}
    snapshot: "{EARLY}"  # moved by `xarch lock --snapshot`
    keyring: {debian_keyring}
packages: [app]
"""
    recipe.write_text(text)
    ok(xarch_in_process("lock", "-f", str(recipe)))
    assert versions(folder)["app"] == "1.0"
    assert ok(xarch_in_process("outdated", "-f", str(recipe))).stdout == "amd64: up to date\n"
    ahead = xarch_in_process("outdated", "-f", str(recipe), "--snapshot", "latest")
    assert ahead.code == 1 and "  app 1.0 → 2.0 (stable)" in ahead.stdout

    moved = ok(xarch_in_process("lock", "-f", str(recipe), "--snapshot", "latest"))
    assert recipe.read_text() == text.replace(EARLY, LATE)  # that value only, quotes and comment kept
    assert moved.stdout.splitlines()[:3] == [f"snapshot: {EARLY} → {LATE}", "amd64:", "  ~ app 1.0 → 2.0"]
    assert versions(folder) == {"app": "2.0", "libfoo": "2.0", "newdep": "1.0"}
    # The lock matches the rewritten recipe: a --locked build would take it.
    assert ok(xarch_in_process("outdated", "-f", str(recipe))).stdout == "amd64: up to date\n"

    back = json.loads(ok(xarch_in_process("lock", "-f", str(recipe), "--snapshot", EARLY, "--json")).stdout)
    assert back["snapshot"] == {"old": LATE, "new": EARLY}
    amd64 = back["platforms"]["amd64"]
    assert [(c["name"], c["old"], c["new"]) for c in amd64["downgraded"]] == [
        ("app", "2.0", "1.0"), ("libfoo", "2.0", "1.0")]
    assert [c["name"] for c in amd64["removed"]] == ["newdep"]
    assert amd64["sizes"]["image"]["installed_kib_change"] == -37
    assert recipe.read_text() == text

    for bad in ("yesterday", "2025-01-01"):
        result = xarch_in_process("lock", "-f", str(recipe), "--snapshot", bad)
        assert result.code == 2
        result.one_error_line(f"--snapshot {bad!r}")
    assert recipe.read_text() == text


def test_snapshot_needs_a_pinned_recipe(project: Path) -> None:
    before = (project / "xarch.yaml").read_bytes()
    result = xarch_in_process("lock", "-f", str(project), "--snapshot", EARLY)
    assert result.code == 2
    result.one_error_line("the recipe sets no sources.debian snapshot")
    assert (project / "xarch.yaml").read_bytes() == before


def test_latest_reads_both_listing_forms_of_snapshot_debian_org() -> None:
    """The link forms snapshot.debian.org's pages use (its front page documents them): months on
    /archive/debian/, a month's timestamps on its page. (The real service is not reached in tests.)"""
    from xarch.sources.debian.config import DebianSource
    from xarch.sources.debian.snapshot import _MONTH, listing_url, timestamps_in

    months = '<a href="./?year=2009;month=9">9</a> <a href="?year=2009&amp;month=10">10</a>'
    assert sorted(_MONTH.findall(months)) == [("2009", "10"), ("2009", "9")]
    month = ('<a href="20091004T111800Z/">2009-10-04 11:18:00</a>\n'
             '<a href="/archive/debian/20091031T215606Z/">2009-10-31</a> <a href="../">up</a>')
    assert timestamps_in(month) == ["20091004T111800Z", "20091031T215606Z"]
    security = DebianSource(suites=["bookworm-security"], mirror="http://deb.debian.org/debian-security",
                            snapshot="20250101T000000Z")
    assert listing_url(security) == "http://snapshot.debian.org/archive/debian-security/"
    templated = DebianSource(suites=["stable"], mirror="http://host/archive/debian/{snapshot}/",
                             snapshot="20250101T000000Z")
    assert listing_url(templated) == "http://host/archive/debian/"


def test_pins_of_a_cross_root_are_per_architecture() -> None:
    """In a cross root (native amd64, foreign arm64) a pin holds one architecture of a name: the
    other stays free; a pinned version the archive lost is reported and left free; providers of a
    virtual name are narrowed with the versions they come from."""
    from xarch.sources.debian.packages import Candidate
    from xarch.sources.debian.resolver import Universe
    from xarch.sources.debian.update import pinned_universe

    def cand(name: str, version: str, arch: str, **fields: str) -> Candidate:
        return Candidate(name, version, arch, f"pool/{name}_{version}_{arch}.deb", 1, "0" * 64, "stable",
                         "main", {"Multi-Arch": "same", **fields})

    universe = Universe.build("amd64", [
        cand("libfake1", "1.0", "amd64"), cand("libfake1", "2.0", "amd64"),
        cand("libfake1", "1.0", "arm64"), cand("libfake1", "2.0", "arm64"),
        cand("mta", "1.0", "all", Provides="mail-agent"), cand("mta", "2.0", "all", Provides="mail-agent"),
        cand("gone", "3.0", "arm64")], foreign=["arm64"])
    narrowed, gone = pinned_universe(universe, {("libfake1", "arm64"): "1.0", ("mta", "amd64"): "1.0",
                                                ("gone", "arm64"): "2.0"})
    assert [(c.version, c.architecture) for c in narrowed.by_name["libfake1"]] == [
        ("2.0", "amd64"), ("1.0", "amd64"), ("1.0", "arm64")]

    def best(name: str, arch: str) -> str:
        found = narrowed.best(name, arch)
        assert found is not None, f"no {name}:{arch}"
        return found.version

    assert best("libfake1", "arm64") == "1.0"
    assert best("libfake1", "amd64") == "2.0"
    assert [c.version for c, _ in narrowed.providers("mail-agent")] == ["1.0"]
    assert gone == [("gone", "arm64", "2.0")] and best("gone", "arm64") == "3.0"
    assert len(universe.by_name["libfake1"]) == 4  # the universe the other sets use is untouched


def test_a_pin_the_archive_dropped_makes_the_installed_change_unknown_not_wrong(project: Path) -> None:
    """An old lock (no installed_size) pinning a version the archive no longer has: its size is
    unknown, so the report must not count it as 0 KiB (that printed `installed +N KiB` for every
    point release). Unknown entries on both sides cancel, so the rest stays exact."""
    lock_file = project / "xarch.lock"
    text = "".join(line for line in lock_file.read_text().splitlines(keepends=True)
                   if "installed_size:" not in line)
    edited = re.sub(r"(name: tool\n(?:      .*\n)*?      version: )'?1\.0'?", r"\g<1>0.9-gone", text)
    assert edited != text
    lock_file.write_text(edited)
    printed = ok(xarch_in_process("lock", "-f", str(project), "--update", "tool")).stdout
    said = "image: installed ? KiB (155 → 158 KiB, 1 without Installed-Size, 1 of them moved)"
    assert "~ tool 0.9-gone → 1.0" in printed and said in printed, printed
    lock_file.write_text(edited)
    report = json.loads(ok(xarch_in_process("lock", "-f", str(project), "--update", "tool", "--json")).stdout)
    amd64 = report["platforms"]["amd64"]
    assert [(c["name"], c["old"]) for c in amd64["upgraded"]] == [("tool", "0.9-gone")], report
    assert amd64["sizes"]["image"]["installed_kib_change"] is None, amd64["sizes"]
    # Nothing moved, every size unknown on both sides: the change is exact again (0).
    lock_file.write_text(text)
    report = json.loads(ok(xarch_in_process("lock", "-f", str(project), "--update", "--json")).stdout)
    assert report["platforms"]["amd64"]["sizes"]["image"]["installed_kib_change"] == 0, report


def test_odd_package_names_and_a_lock_of_another_recipe(project: Path, tmp_path: Path) -> None:
    before = (project / "xarch.lock").read_bytes()
    for name in ("tool\n", "tool:amd64", "tool=1.0", "Tool", "t", "../tool", "-x"):
        outcome = xarch_in_process("lock", "-f", str(project), "--update", "--", name)
        assert outcome.code == 2, (name, outcome.stderr)
        outcome.one_error_line("not a Debian package name")
        assert (project / "xarch.lock").read_bytes() == before
    # Duplicates are one name; the lock does not move when nothing is newer.
    ok(xarch_in_process("lock", "-f", str(project), "--update", "tool", "tool"))
    # A lock that another recipe wrote: said once, then the recipe wins.
    other = Lock.load(project / "xarch.lock")
    other.inputs["selections"] = "sha256:" + "0" * 64
    other.dump(project / "xarch.lock")
    outcome = ok(xarch_in_process("lock", "-f", str(project), "--update", "tool"))
    assert "note: xarch.lock does not match the recipe" in outcome.stderr, outcome.stderr
