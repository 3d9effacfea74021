"""Verified downloads into the debian_store and installation into an image tree, no scripts run."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, FixturePackage, GpgKey, RepoServer, build_deb, stored_blobs
from tests.support.needs import need_tool
from tests.support.trees import entry_at
from xarch import platforms
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.debian.errors import FetchError, LockError, UnpackError
from xarch.sources.debian.fetch import fetch_packages
from xarch.sources.debian.install import Group, InstallReport, User, install_packages, write_accounts
from xarch.sources.debian.lock import Lock, mirror_of, resolve_lock

# The signed test repository and its server (fixtures with teardown).
pytest_plugins = ["tests.support.debian_fixtures"]

AMD64, ARM64 = platforms.get("amd64"), platforms.get("arm64")
EPOCH = 1700000000
IMAGE = ["app", "ca-certificates", "tzdata", "base-passwd"]


def locked(source: DebianSource, packages: list[str] = IMAGE) -> Lock:
    return resolve_lock(source, PackageSelection(packages=packages), [AMD64, ARM64])


def test_fetch_then_second_fetch_needs_no_network(debian_source: DebianSource, debian_store: Store,
                                                  apt_server: RepoServer) -> None:
    lock = locked(debian_source)
    lines: list[str] = []
    for plat in ("amd64", "arm64"):
        fetch_packages(lock.entries(plat), debian_source.base_url(), debian_store, say=lines.append,
                       show_bar=False)
    wanted = {p.sha256 for e in ("amd64", "arm64") for p in lock.entries(e)}
    assert len(stored_blobs(debian_store)) == len(wanted)
    assert any(line.startswith("fetched app 1.0 (arm64)") for line in lines)
    apt_server.stop()  # from here on, any network access fails
    paths = fetch_packages(lock.entries("arm64"), debian_source.base_url(), debian_store, show_bar=False)
    assert all(path.is_file() for path in paths.values())
    report = install_packages(Tree(), lock.entries("arm64"), debian_store, EPOCH)
    assert "app 1.0 (arm64)" in report.installed


def test_tampered_deb_never_enters_the_store(apt_repo: AptRepo, debian_source: DebianSource,
                                             debian_store: Store) -> None:
    lock = locked(debian_source)
    entry = next(p for p in lock.entries("amd64") if p.name == "app")
    deb = apt_repo.root / entry.filename
    data = bytearray(deb.read_bytes())
    data[-10] ^= 0xFF  # same size, different bytes
    deb.write_bytes(bytes(data))
    with pytest.raises(FetchError, match=r"app 1\.0 \(amd64\) from http://127\.0\.0\.1:\d+/pool/main/"
                                         r"app_1\.0_amd64\.deb: sha256 is [0-9a-f]{64}, expected "
                                         + entry.sha256) as caught:
        fetch_packages([entry], debian_source.base_url(), debian_store, show_bar=False)
    assert "\n" not in str(caught.value)
    assert stored_blobs(debian_store) == []
    assert not list((debian_store.root / "sha256").glob(".tmp-*"))


def test_larger_download_is_refused(apt_repo: AptRepo, debian_source: DebianSource,
                                    debian_store: Store) -> None:
    lock = locked(debian_source, ["prelib"])
    entry = lock.entries("amd64")[0]
    deb = apt_repo.root / entry.filename
    deb.write_bytes(deb.read_bytes() + b"trailing")
    with pytest.raises(FetchError, match=r"larger than the locked"):
        fetch_packages([entry], debian_source.base_url(), debian_store, show_bar=False)
    assert stored_blobs(debian_store) == []


def test_missing_file_on_the_mirror(apt_repo: AptRepo, debian_source: DebianSource,
                                    debian_store: Store) -> None:
    entry = locked(debian_source, ["prelib"]).entries("amd64")[0]
    (apt_repo.root / entry.filename).unlink()
    with pytest.raises(FetchError, match=r"cannot fetch .*prelib_1\.0_all\.deb: HTTP 404"):
        fetch_packages([entry], debian_source.base_url(), debian_store, show_bar=False)


def install(source: DebianSource, debian_store: Store, plat: str = "arm64") -> tuple[Tree, InstallReport]:
    lock = locked(source)
    fetch_packages(lock.entries(plat), source.base_url(), debian_store, show_bar=False)
    tree = Tree()
    return tree, install_packages(tree, lock.entries(plat), debian_store, EPOCH)


def test_install_unpacks_without_running_scripts(debian_source: DebianSource, debian_store: Store) -> None:
    marker = Path("/tmp/xarch-fixture-postinst-ran")
    marker.unlink(missing_ok=True)
    tree, report = install(debian_source, debian_store)
    assert entry_at(tree, "usr/bin/app").data == b"#!/bin/sh\necho app arm64\n"
    assert entry_at(tree, "usr/bin/app").mode == 0o755
    app_link = entry_at(tree, "usr/bin/app-link")
    assert app_link.type == "symlink" and app_link.linkname == "app"
    assert entry_at(tree, "usr/lib/aarch64-linux-gnu/libfake.so.1").data == b"libfake1 2.0 arm64\n"
    assert ("app", "postinst") in report.skipped and ("app", "prerm") in report.skipped
    assert ("ca-certificates", "postinst") in report.skipped
    assert not marker.exists()


def test_usrmerge_places_bin_in_usr(debian_source: DebianSource, debian_store: Store) -> None:
    tree, _ = install(debian_source, debian_store)
    assert entry_at(tree, "bin").type == "symlink" and entry_at(tree, "bin").linkname == "usr/bin"
    assert entry_at(tree, "usr/bin/app-legacy").data == b"#!/bin/sh\necho legacy\n"
    assert "bin/app-legacy" not in tree.entries


def test_dpkg_status_and_lists(debian_source: DebianSource, debian_store: Store) -> None:
    tree, _ = install(debian_source, debian_store)
    status = entry_at(tree, "var/lib/dpkg/status").read().decode()
    assert status.endswith("\n\n")  # dpkg ends every stanza, the last too, with an empty line
    stanzas = status[:-2].split("\n\n")
    names = [s.split("\n", 1)[0].removeprefix("Package: ") for s in stanzas]
    assert names == sorted(names) and "app" in names and "libfake1" in names
    app = next(s for s in stanzas if s.startswith("Package: app\n"))
    assert app.startswith("Package: app\nStatus: install ok installed\n")
    conf_md5 = hashlib.md5(b"listen 8080\n").hexdigest()
    assert f"Conffiles:\n /etc/app.conf {conf_md5}\nDescription:" in app
    assert "Architecture: arm64" in app
    listing = entry_at(tree, "var/lib/dpkg/info/app.list").read().decode().splitlines()
    assert "/usr/bin/app" in listing and "/bin/app-legacy" in listing
    assert "var/lib/dpkg/info/libfake1:arm64.list" in tree  # Multi-Arch: same


def test_generated_in_place_of_scripts(debian_source: DebianSource, debian_store: Store) -> None:
    tree, report = install(debian_source, debian_store)
    bundle = entry_at(tree, "etc/ssl/certs/ca-certificates.crt").data
    # update-ca-certificates order (sorted paths), each certificate ending in a newline.
    assert bundle == (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
                      b"-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n")
    pem = entry_at(tree, "etc/ssl/certs/Alpha_Root.pem")
    assert pem.linkname == "/usr/share/ca-certificates/mozilla/Alpha_Root.crt"
    assert entry_at(tree, "etc/localtime").linkname == "/usr/share/zoneinfo/Etc/UTC"
    assert entry_at(tree, "etc/passwd").data == b"root:*:0:0:root:/root:/bin/sh\n"
    assert "/etc/ssl/certs/ca-certificates.crt" in report.generated
    assert {entry_at(tree, path).mtime for path in report.generated} == {EPOCH}
    lines = report.lines()
    assert "not run: app postinst" in lines and "made by xarch: /var/lib/dpkg/status" in lines


def test_install_is_deterministic(debian_source: DebianSource, debian_store: Store) -> None:
    first, _ = install(debian_source, debian_store)
    second, _ = install(debian_source, debian_store)
    assert list(first) == list(second)


def test_install_needs_the_package_in_the_store(debian_source: DebianSource, debian_store: Store) -> None:
    lock = locked(debian_source, ["prelib"])
    with pytest.raises(UnpackError, match=r"prelib 1\.0 \(all\) is not in the store"):
        install_packages(Tree(), lock.entries("amd64"), debian_store, EPOCH)


def test_write_accounts(debian_source: DebianSource, debian_store: Store) -> None:
    tree, _ = install(debian_source, debian_store)
    write_accounts(tree, [User("web", 101, 101, home="/var/www")], [Group("web", 101)], EPOCH)
    assert entry_at(tree, "etc/passwd").read().decode().splitlines() == [
        "root:*:0:0:root:/root:/bin/sh", "web:x:101:101::/var/www:/usr/sbin/nologin"]
    assert entry_at(tree, "etc/group").read().decode().splitlines()[-1] == "web:x:101:"
    shadow = entry_at(tree, "etc/shadow")
    assert shadow.mode == 0o640 and shadow.gid == 42 and shadow.data == b"root:*:::::::\nweb:*:::::::\n"
    home = entry_at(tree, "var/www")
    assert (home.type, home.uid, home.gid, home.mode) == ("dir", 101, 101, 0o755)
    with pytest.raises(UnpackError, match="id 101 of other is taken by web"):
        write_accounts(tree, [User("other", 101, 101)], [], EPOCH)
    with pytest.raises(UnpackError, match="gid 999, which no group has"):
        write_accounts(tree, [User("lost", 555, 999)], [], EPOCH)


@pytest.mark.parametrize("make, message", [
    (lambda: User("Bad Name", 1, 1), r"user name 'Bad Name' is not a valid account name"),
    (lambda: User("ok", 1, 1, home="/a:b"), r"'/a:b' may not contain ':'"),
    (lambda: Group("g", -1), r"group g has id -1"),
])
def test_account_fields_are_checked(make: Callable[[], object], message: str) -> None:
    with pytest.raises(UnpackError, match=message):
        make()


def test_write_accounts_without_base_passwd() -> None:
    tree = Tree()
    write_accounts(tree, [User("app", 1000, 1000)], [Group("app", 1000)])
    assert entry_at(tree, "etc/passwd").read().decode().splitlines() == [
        "root:x:0:0:root:/root:/bin/sh", "app:x:1000:1000::/nonexistent:/usr/sbin/nologin"]


def test_two_archives_like_main_and_security(tmp_path: Path, debian_source: DebianSource,
                                             debian_keyring: Path, debian_key: GpgKey,
                                             debian_store: Store) -> None:
    security = AptRepo(tmp_path / "security", debian_key)
    security.add(build_deb(FixturePackage("prelib", "1.1", files={"usr/share/prelib/data": b"fixed\n"}),
                           tmp_path / "roots", tmp_path / "debs"))
    security.publish(suite="stable-security")
    server = RepoServer(security.root)
    try:
        fixes = DebianSource(suites=["stable-security"], mirror=server.url, keyring=debian_keyring)
        lock = resolve_lock([debian_source, fixes], PackageSelection(packages=["app"]), [AMD64])
        prelib = next(p for p in lock.entries("amd64") if p.name == "prelib")
        assert (prelib.version, prelib.suite) == ("1.1", "stable-security")
        assert set(lock.releases) == {"stable", "stable-security"}
        fetch_packages(lock.entries("amd64"), mirror_of([debian_source, fixes]), debian_store, show_bar=False,
                       say=lambda _m: None)
        tree = Tree()
        install_packages(tree, lock.entries("amd64"), debian_store, EPOCH)
        assert entry_at(tree, "usr/share/prelib/data").data == b"fixed\n"
        with pytest.raises(LockError, match="which sources.debian no longer lists"):
            mirror_of(debian_source)(prelib)
        with pytest.raises(LockError, match="suite stable is listed twice"):
            resolve_lock([debian_source, debian_source], PackageSelection(packages=["app"]), [AMD64])
    finally:
        server.stop()


def test_progress_bar_path(debian_source: DebianSource, debian_store: Store,
                           capsys: pytest.CaptureFixture[str]) -> None:
    entries = locked(debian_source, ["app"]).entries("amd64")
    fetch_packages(entries, debian_source.base_url(), debian_store, show_bar=True, jobs=2)
    assert len(stored_blobs(debian_store)) == len(entries)
    assert "fetched" not in capsys.readouterr().err  # the bar replaces the per-file lines


def test_a_multiarch_root_has_dpkg_state_dpkg_reads(debian_source: DebianSource, debian_store: Store,
                                                     tmp_path: Path) -> None:
    """A cross root: libfake1 (Multi-Arch: same) for amd64 and arm64 beside each other, and
    interp for amd64 only; dpkg-query itself reads the database xarch wrote."""
    dpkg_query = need_tool("dpkg-query")
    lock = locked(debian_source, ["libfake1", "interp"])
    entries = lock.entries("amd64") + [p for p in lock.entries("arm64") if p.name == "libfake1"]
    fetch_packages(entries, debian_source.base_url(), debian_store, show_bar=False)
    tree = Tree()
    install_packages(tree, entries, debian_store, EPOCH, native="amd64")
    assert entry_at(tree, "usr/lib/x86_64-linux-gnu/libfake.so.1").data == b"libfake1 2.0 amd64\n"
    assert entry_at(tree, "usr/lib/aarch64-linux-gnu/libfake.so.1").data == b"libfake1 2.0 arm64\n"
    assert entry_at(tree, "var/lib/dpkg/arch").data == b"amd64\narm64\n"
    admin = tmp_path / "dpkg"
    for entry in tree:
        if entry.path.startswith("var/lib/dpkg/") and entry.type == "file":
            target = admin / entry.path[len("var/lib/dpkg/"):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(entry.read())
    (admin / "updates").mkdir()
    query = [dpkg_query, f"--admindir={admin}"]
    said = subprocess.run([*query, "-W", "-f=${Package}:${Architecture} ${Status}\\n"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert said == ["interp:amd64 install ok installed", "libfake1:amd64 install ok installed",
                    "libfake1:arm64 install ok installed"]
    listed = subprocess.run([*query, "-L", "libfake1:arm64"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert "/usr/lib/aarch64-linux-gnu/libfake.so.1" in listed
