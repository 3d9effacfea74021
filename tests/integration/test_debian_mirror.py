"""One test against the machine's real Debian mirror and archive keyring."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.needs import need_file, need_tool
from tests.support.trees import entry_at
from xarch import platforms
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.sources.debian.config import DEFAULT_KEYRING, DebianSource, PackageSelection
from xarch.sources.debian.fetch import fetch_packages
from xarch.sources.debian.hostapt import default_mirror
from xarch.sources.debian.install import install_packages
from xarch.sources.debian.lock import mirror_of, resolve_lock

ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


@pytest.mark.slow
def test_lock_fetch_install_from_the_real_archive(tmp_path: Path) -> None:
    need_tool("gpgv")
    need_file(DEFAULT_KEYRING, "debian-archive-keyring is not installed (a Debian host has it)")
    # The main archive plus the security archive, both read from the host's apt config.
    sources = [DebianSource(suites=["bookworm"]), DebianSource(suites=["bookworm-security"])]
    assert sources[0].mirror_url() == default_mirror()
    selection = PackageSelection(packages=["busybox-static", "ca-certificates"])
    store = Store(tmp_path / "store")
    lock = resolve_lock(sources, selection, [platforms.get("amd64"), platforms.get("arm64")], store=store)
    assert lock.releases["bookworm"]["signed_by"] and "valid_until" in lock.releases["bookworm-security"]
    for plat in ("amd64", "arm64"):
        entries = lock.entries(plat)
        names = {p.name for p in entries}
        assert {"busybox-static", "ca-certificates", "openssl", "libssl3"} <= names
        assert {p.architecture for p in entries} <= {plat, "all"}
        fetch_packages(entries, mirror_of(sources), store, show_bar=False, say=lambda _m: None)
        tree = Tree()
        report = install_packages(tree, entries, store, epoch=1700000000)
        busybox = entry_at(tree, "usr/bin/busybox")
        assert busybox is not None and busybox.read()[:4] == b"\x7fELF"
        assert int.from_bytes(busybox.read()[18:20], "little") == ELF_MACHINE[plat]
        assert entry_at(tree, "etc/ssl/certs/ca-certificates.crt").read().count(b"BEGIN CERTIFICATE") > 100
        assert ("ca-certificates", "postinst") in report.skipped
