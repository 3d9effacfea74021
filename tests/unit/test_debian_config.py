"""Recipe models of the Debian source and the host apt configuration reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from xarch.sources.debian.config import DebianSource, PackageSelection, PlatformPackages
from xarch.sources.debian.hostapt import FALLBACK_MIRROR, default_mirror, host_mirrors


def test_suites_one_or_many_and_defaults() -> None:
    # One suite may be written as a string (the recipe allows it); it is read as a list.
    source = DebianSource.model_validate({"suites": "bookworm", "mirror": "http://deb.debian.org/debian/"})
    assert source.suites == ["bookworm"] and source.components == ["main"]
    assert source.mirror == "http://deb.debian.org/debian"
    assert str(source.keyring) == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert source.base_url() == "http://deb.debian.org/debian"


def test_default_mirrors_follow_the_host() -> None:
    # Looked up when a URL is first needed (mirror_url), not when the recipe is read.
    assert DebianSource(suites=["bookworm"]).mirror == ""
    assert DebianSource(suites=["bookworm"]).mirror_url() == default_mirror()
    assert DebianSource(suites=["bookworm-security"]).mirror_url() == default_mirror(security=True)
    assert default_mirror(security=True).endswith("/debian-security")


def test_snapshot_urls() -> None:
    plain = DebianSource(suites=["bookworm"], snapshot="20250520T000000Z")
    assert plain.base_url() == "http://snapshot.debian.org/archive/debian/20250520T000000Z"
    security = DebianSource(suites=["bookworm-security"], snapshot="20250520T000000Z")
    assert security.base_url() == "http://snapshot.debian.org/archive/debian-security/20250520T000000Z"
    templated = DebianSource(suites=["bookworm"], mirror="https://mirror.example/snap/{snapshot}/debian",
                             snapshot="20250520T000000Z")
    assert templated.base_url() == "https://mirror.example/snap/20250520T000000Z/debian"


@pytest.mark.parametrize("fields, message", [
    ({"suites": []}, "must name at least one"),
    ({"suites": "bookworm", "snapshot": "yesterday"}, "not a snapshot timestamp"),
    ({"suites": "bookworm", "mirror": "ftp://x/debian"}, "not an http:// or https:// URL"),
    ({"suites": "bookworm", "fingerprints": ["1234"]}, "not a full OpenPGP fingerprint"),
    ({"suites": "bookworm", "suite": "x"}, "Extra inputs are not permitted"),
])
def test_bad_sources(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DebianSource(**fields)


def test_fingerprints_are_normalised() -> None:
    spaced = "4cb5 0190 207b 4758 a3f7  3a79 6ed0 e7b8 2643 e131"
    source = DebianSource(suites=["bookworm"], fingerprints=[spaced])
    assert source.fingerprints == ["4CB50190207B4758A3F73A796ED0E7B82643E131"]


def test_selection_per_platform() -> None:
    arm64 = PlatformPackages(add=["qemu-guest-agent"], exclude=["curl"])
    selection = PackageSelection(packages=["nginx-light", "curl"], platforms={"linux/arm64": arm64})
    assert selection.for_platform("amd64") == ["nginx-light", "curl"]
    assert selection.for_platform("arm64") == ["nginx-light", "qemu-guest-agent"]
    assert selection.recommends is False and selection.essential is False


@pytest.mark.parametrize("fields, message", [
    ({"packages": ["Not A Name"]}, "is not a Debian package name"),
    ({"packages": ["a1"], "platforms": {"arm64": {"exclude": ["b1"]}}},
     r"platforms\.arm64\.exclude: 'b1' is not"),
    ({"packages": ["a1"], "recommend": True}, "Extra inputs are not permitted"),
    ({"packages": ["a1"], "platforms": {"arm46": {"add": ["b1"]}}}, r"platforms: unknown platform 'arm46'"),
])
def test_bad_selections(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PackageSelection(**fields)


def test_host_mirrors_from_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n")
    disabled = tmp_path / "sources.list.d" / "other.list.disabled"
    disabled.write_text("deb http://three.example/debian x main\n")
    assert host_mirrors(tmp_path) == ["http://one.example/debian", "http://two.example/debian"]
    assert host_mirrors(tmp_path, security=True) == ["http://deb.debian.org/debian-security"]
    assert host_mirrors(tmp_path / "missing") == []
    assert FALLBACK_MIRROR == "http://deb.debian.org/debian"
