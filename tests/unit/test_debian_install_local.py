"""Installing .debs from the store into a tree (xarch/sources/debian/install.py), with packages
dpkg-deb builds here (no archive server): files and merged-/usr links, the dpkg database,
conffiles, maintainer scripts reported as not run, and a .deb that is not the locked one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.aptrepo import FixturePackage, build_deb
from tests.support.needs import need_tool
from tests.support.trees import entry_at
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.sources.debian.errors import UnpackError
from xarch.sources.debian.install import install_packages
from xarch.sources.debian.lock import LockedPackage

EPOCH = 1_700_000_000


def stored(store: Store, deb: Path, pkg: FixturePackage) -> LockedPackage:
    data = deb.read_bytes()
    store.put_bytes(data)
    return LockedPackage(pkg.name, pkg.version, pkg.arch, f"pool/main/{deb.name}", len(data),
                         hashlib.sha256(data).hexdigest(), "stable")


@pytest.fixture
def packages(tmp_path: Path) -> tuple[Store, list[LockedPackage]]:
    need_tool("dpkg-deb")
    store = Store(tmp_path / "store")
    made = [
        FixturePackage("libdemo", "1.0", "arm64", {"Multi-Arch": "same"},
                       files={"usr/lib/aarch64-linux-gnu/libdemo.so.1": b"lib\n"}),
        FixturePackage("demo", "2.0", "arm64", {"Depends": "libdemo"},
                       files={"bin/demo": b"#!/bin/sh\necho demo\n", "etc/demo.conf": b"port 1\n"},
                       scripts={"postinst": "#!/bin/sh\necho configured\n"}, conffiles=["etc/demo.conf"]),
    ]
    return store, [stored(store, build_deb(pkg, tmp_path / "build", tmp_path / "debs"), pkg) for pkg in made]


def test_files_links_and_the_dpkg_database(packages: tuple[Store, list[LockedPackage]]) -> None:
    store, locked = packages
    tree = Tree()
    report = install_packages(tree, locked, store, EPOCH)
    assert report.installed == ["libdemo 1.0 (arm64)", "demo 2.0 (arm64)"]
    assert entry_at(tree, "bin").linkname == "usr/bin"  # merged /usr: bin/demo lands in usr/bin
    demo = entry_at(tree, "usr/bin/demo")
    assert (demo.read(), demo.mode) == (b"#!/bin/sh\necho demo\n", 0o755)  # mtimes: clamped in the layer
    status = entry_at(tree, "var/lib/dpkg/status").read().decode()
    assert "Package: demo\nStatus: install ok installed\n" in status
    assert "Conffiles:\n /etc/demo.conf " + hashlib.md5(b"port 1\n").hexdigest() in status
    assert ("demo", "postinst") in report.skipped  # not run: its effects are xarch's to make
    listing = entry_at(tree, "var/lib/dpkg/info/demo.list").read().decode().splitlines()
    assert "/bin/demo" in listing and "/etc/demo.conf" in listing


def test_a_deb_that_is_not_the_locked_one_is_refused(packages: tuple[Store, list[LockedPackage]]) -> None:
    store, (lib, demo) = packages
    liar = LockedPackage("demo", "3.0", demo.architecture, demo.filename, demo.size, demo.sha256, demo.suite)
    with pytest.raises(UnpackError) as caught:
        install_packages(Tree(), [lib, liar], store, EPOCH)
    assert "\n" not in str(caught.value) and "demo" in str(caught.value)


def test_a_package_not_in_the_store_says_fetch_it_first(tmp_path: Path) -> None:
    missing = LockedPackage("gone", "1", "all", "pool/main/gone.deb", 1, "0" * 64, "stable")
    with pytest.raises(UnpackError, match="is not in the store .*; fetch it first"):
        install_packages(Tree(), [missing], Store(tmp_path / "store"), EPOCH)
