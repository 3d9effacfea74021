"""InRelease files (xarch/sources/debian/release.py) signed by a throwaway gpg key and checked by the
real gpgv, from a repository folder (no server): the signed text and signer, an altered file, a
signer that is not pinned, and an expired Valid-Until."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, FixturePackage, GpgKey, build_deb
from tests.support.needs import need_tool
from xarch.sources.debian.errors import ReleaseExpired, SignatureError
from xarch.sources.debian.release import parse_release, verify_inrelease

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[GpgKey, Path, Path]:
    """(the key, its keyring, the repository) with one package, published twice: stable and old."""
    for tool in ("gpg", "gpgv", "dpkg-deb", "apt-ftparchive"):
        need_tool(tool)
    folder = tmp_path_factory.mktemp("repo")
    key = GpgKey(folder / "gnupg")
    repo = AptRepo(folder / "repo", key)
    repo.add(build_deb(FixturePackage("hello"), folder / "build", folder / "debs"))
    repo.publish()
    repo.publish("old", valid_until="Sat, 01 Jan 2000 00:00:00 UTC")
    return key, key.export(folder / "keyring.gpg"), repo.root


def test_the_signed_text_and_its_signer(signed: tuple[GpgKey, Path, Path]) -> None:
    key, keyring, repo = signed
    data = (repo / "dists" / "stable" / "InRelease").read_bytes()
    text, signer = verify_inrelease(data, keyring, [], "InRelease")
    assert signer == key.fingerprint and "\nOrigin: xarch-tests\n" in text
    release = parse_release(text, "stable", "http://m/dists/stable/", signer, "0" * 64, NOW)
    assert release.architectures == ("amd64", "arm64") and release.components == ("main",)
    assert "main/binary-arm64/Packages.xz" in release.files
    assert release.lock_record()["signed_by"] == key.fingerprint


def test_an_altered_file_is_a_bad_signature(signed: tuple[GpgKey, Path, Path]) -> None:
    _, keyring, repo = signed
    data = (repo / "dists" / "stable" / "InRelease").read_bytes().replace(b"Origin: xarch-tests",
                                                                            b"Origin: xarch-evil!")
    with pytest.raises(SignatureError, match="BAD signature"):
        verify_inrelease(data, keyring, [], "InRelease")


def test_a_signer_that_is_not_pinned_is_refused(signed: tuple[GpgKey, Path, Path]) -> None:
    _, keyring, repo = signed
    data = (repo / "dists" / "stable" / "InRelease").read_bytes()
    with pytest.raises(SignatureError, match="which is not one of the pinned fingerprints"):
        verify_inrelease(data, keyring, ["0" * 40], "InRelease")


def test_an_expired_release_names_its_valid_until(signed: tuple[GpgKey, Path, Path]) -> None:
    _, keyring, repo = signed
    text, signer = verify_inrelease((repo / "dists" / "old" / "InRelease").read_bytes(), keyring, [], "x")
    with pytest.raises(ReleaseExpired, match="expired on Sat, 01 Jan 2000 00:00:00"):
        parse_release(text, "old", "http://m/dists/old/", signer, "0" * 64, NOW)
    with pytest.raises(SignatureError, match="is signed for old, not for stable"):
        parse_release(text, "stable", "http://m/dists/stable/", signer, "0" * 64, NOW)
