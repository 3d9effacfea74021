"""InRelease signature, Valid-Until and Packages hashes, against a real signed repository."""

from __future__ import annotations

import lzma
import time
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, GpgKey, RepoServer, stored_blobs
from xarch import platforms
from xarch.oci.store import Store
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.debian.errors import IndexMismatch, ReleaseExpired, SignatureError
from xarch.sources.debian.locking import run_lock
from xarch.sources.debian.release import fetch_release

# The signed test repository and its server (fixtures with teardown).
pytest_plugins = ["tests.support.debian_fixtures"]

AMD64 = platforms.get("amd64")
SELECTION = PackageSelection(packages=["app"])
INRELEASE = Path("dists/stable/InRelease")


def lock_into(tmp_path: Path, source: DebianSource, debian_store: Store) -> Path:
    recipe = tmp_path / "project" / "xarch.yaml"
    recipe.parent.mkdir(exist_ok=True)
    run_lock(recipe, source, SELECTION, [AMD64], store=debian_store, say=lambda _m: None)
    return recipe.parent / "xarch.lock"


def test_verified_release_fields(debian_source: DebianSource, debian_key: GpgKey) -> None:
    release = fetch_release(debian_source, "stable")
    assert release.signed_by == debian_key.fingerprint
    assert release.architectures == ("amd64", "arm64")
    assert "main/binary-arm64/Packages.xz" in release.files


def test_pinned_fingerprint(debian_source: DebianSource, debian_key: GpgKey) -> None:
    pinned = debian_source.model_copy(update={"fingerprints": [debian_key.fingerprint]})
    assert fetch_release(pinned, "stable").signed_by == debian_key.fingerprint
    other = debian_source.model_copy(update={"fingerprints": ["A" * 40]})
    with pytest.raises(SignatureError, match="not one of the pinned fingerprints"):
        fetch_release(other, "stable")


def test_altered_inrelease_is_a_bad_signature(tmp_path: Path, apt_repo: AptRepo, debian_source: DebianSource,
                                              debian_store: Store) -> None:
    path = apt_repo.root / INRELEASE
    path.write_text(path.read_text().replace("Origin: xarch-tests", "Origin: xarch-evil0"))
    with pytest.raises(SignatureError, match=r"InRelease: BAD signature") as caught:
        lock_into(tmp_path, debian_source, debian_store)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "project" / "xarch.lock").exists()
    assert stored_blobs(debian_store) == []


def test_text_outside_the_signed_block_is_never_read(apt_repo: AptRepo, debian_source: DebianSource) -> None:
    path = apt_repo.root / INRELEASE
    # An attacker may prepend fields; only gpgv's verified output is parsed.
    prefix = "Valid-Until: Thu, 01 Jan 1970 00:00:00 UTC\nSHA256:\n deadbeef 1 x\n\n"
    path.write_text(prefix + path.read_text())
    release = fetch_release(debian_source, "stable")
    assert release.valid_until is None and "x" not in release.files


def test_signed_by_an_unknown_key(tmp_path: Path, apt_repo: AptRepo, debian_source: DebianSource,
                                  debian_store: Store) -> None:
    stranger = GpgKey(tmp_path / "stranger")
    stranger.clearsign(apt_repo.root / "dists/stable/Release", apt_repo.root / INRELEASE)
    with pytest.raises(SignatureError, match=r"no valid signature from the keyring \(unknown key"):
        lock_into(tmp_path, debian_source, debian_store)
    assert not (tmp_path / "project" / "xarch.lock").exists()


def test_signed_by_an_expired_key(tmp_path: Path, apt_repo: AptRepo, apt_server: RepoServer) -> None:
    short_lived = GpgKey(tmp_path / "short", expire="seconds=1")
    short_lived.clearsign(apt_repo.root / "dists/stable/Release", apt_repo.root / INRELEASE)
    time.sleep(2.1)
    source = DebianSource(suites=["stable"], mirror=apt_server.url,
                          keyring=short_lived.export(tmp_path / "short.gpg"))
    expired = r"no valid signature from the keyring \(key [0-9A-F]+ has expired\)"
    with pytest.raises(SignatureError, match=expired):
        fetch_release(source, "stable")


def test_unsigned_release(apt_repo: AptRepo, debian_source: DebianSource) -> None:
    (apt_repo.root / INRELEASE).write_bytes((apt_repo.root / "dists/stable/Release").read_bytes())
    with pytest.raises(SignatureError, match="no valid signature"):
        fetch_release(debian_source, "stable")


def test_missing_keyring(debian_source: DebianSource, tmp_path: Path) -> None:
    source = debian_source.model_copy(update={"keyring": tmp_path / "nope.gpg"})
    with pytest.raises(SignatureError, match=r"keyring .*nope\.gpg does not exist"):
        fetch_release(source, "stable")


def test_expired_valid_until(tmp_path: Path, apt_repo: AptRepo, debian_source: DebianSource,
                             debian_store: Store) -> None:
    apt_repo.publish(valid_until="Sat, 01 Jan 2022 00:00:00 UTC")
    with pytest.raises(ReleaseExpired, match=r"InRelease expired on Sat, 01 Jan 2022 00:00:00 UTC") as caught:
        lock_into(tmp_path, debian_source, debian_store)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "project" / "xarch.lock").exists()


def test_snapshot_is_judged_at_its_own_time(apt_repo: AptRepo, apt_server: RepoServer,
                                            debian_keyring: Path) -> None:
    apt_repo.publish(valid_until="Sat, 01 Jan 2022 00:00:00 UTC")
    for stamp in ("20211201T000000Z", "20220102T000000Z"):
        (apt_repo.root / stamp).symlink_to(".")  # a snapshot-style URL layout
    source = DebianSource(suites=["stable"], mirror=apt_server.url + "/{snapshot}",
                          snapshot="20211201T000000Z", keyring=debian_keyring)
    assert source.base_url() == apt_server.url + "/20211201T000000Z"
    assert fetch_release(source, "stable").valid_until is not None
    later = source.model_copy(update={"snapshot": "20220102T000000Z"})
    with pytest.raises(ReleaseExpired):
        fetch_release(later, "stable")


def test_release_for_another_suite(apt_repo: AptRepo, apt_server: RepoServer, debian_keyring: Path) -> None:
    # A correctly signed Release of suite "stable" served under dists/testing/.
    (apt_repo.root / "dists/testing").symlink_to("stable")
    source = DebianSource(suites=["testing"], mirror=apt_server.url, keyring=debian_keyring)
    with pytest.raises(SignatureError, match="is signed for stable, not for testing"):
        fetch_release(source, "testing")


def test_packages_hash_mismatch(tmp_path: Path, apt_repo: AptRepo, debian_source: DebianSource,
                                debian_store: Store) -> None:
    index = apt_repo.root / "dists/stable/main/binary-amd64/Packages.xz"
    text = lzma.decompress(index.read_bytes()).replace(b"Package: app", b"Package: evil", 1)
    index.write_bytes(lzma.compress(text))
    with pytest.raises(IndexMismatch, match=r"binary-amd64/Packages\.xz: sha256 .* does not match the signed "
                                            r"Release") as caught:
        lock_into(tmp_path, debian_source, debian_store)
    assert "\n" not in str(caught.value)
    assert stored_blobs(debian_store) == []
    assert not (tmp_path / "project" / "xarch.lock").exists()


def test_verified_indexes_are_cached(tmp_path: Path, debian_source: DebianSource, debian_store: Store,
                                     apt_server: RepoServer) -> None:
    lock_into(tmp_path, debian_source, debian_store)
    assert len(stored_blobs(debian_store)) == 1  # the amd64 Packages.xz
    apt_server.requests.clear()
    lock_into(tmp_path, debian_source, debian_store)
    assert apt_server.requests == ["/dists/stable/InRelease"]
