"""A signed archive whose packages the lock-freshness tests make outdated: version 1 of every
package first; newer versions in the main suite and a fix in a separate security archive
(suite stable-security) published when a test asks (tests/integration/test_lock_update.py,
tests/integration/test_ci_refresh.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, FixturePackage, GpgKey, RepoServer, build_deb
from tests.support.needs import need_tool


def _lib(version: str, arch: str, kib: int) -> FixturePackage:
    return FixturePackage("libfoo", version, arch, {"Multi-Arch": "same", "Installed-Size": str(kib)},
                          files={f"usr/lib/libfoo-{arch}.so": f"libfoo {version}\n".encode()})


def _pkg(name: str, version: str, kib: int, depends: str = "") -> FixturePackage:
    fields = {"Installed-Size": str(kib)} | ({"Depends": depends} if depends else {})
    return FixturePackage(name, version, "all", fields, files={f"usr/share/{name}/v": version.encode()})


FIRST = [_pkg("app", "1.0", 40, "libfoo (>= 1.0)"), _lib("1.0", "amd64", 100), _lib("1.0", "arm64", 100),
         _pkg("tool", "1.0", 3, "libbar"), _pkg("libbar", "1.0", 10), _pkg("base", "1.0", 5)]
NEWER = [_pkg("app", "2.0", 50, "libfoo (>= 2.0), newdep"), _lib("2.0", "amd64", 120),
         _lib("2.0", "arm64", 120), _pkg("newdep", "1.0", 7), _pkg("tool", "1.1", 3, "libbar")]
SECURITY_FIX = [_pkg("libbar", "1.0+deb1u1", 11)]


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    need_tool("dpkg-deb")
    work = tmp_path_factory.mktemp("update-debs")
    return {name: [build_deb(pkg, work / "roots", work / name) for pkg in pkgs]
            for name, pkgs in (("first", FIRST), ("newer", NEWER), ("security", SECURITY_FIX))}


@dataclass
class Archive:
    """The main archive (suite stable) and the security archive (stable-security), one server."""

    main: AptRepo
    security: AptRepo
    server: RepoServer
    debs: dict[str, list[Path]]

    def publish_newer(self) -> None:
        for deb in self.debs["newer"]:
            self.main.add(deb)
        self.main.publish()

    def publish_security_fix(self) -> None:
        for deb in self.debs["security"]:
            self.security.add(deb)
        self.security.publish("stable-security")


@pytest.fixture
def archive(tmp_path: Path, debian_key: GpgKey, debs: dict[str, list[Path]]) -> Iterator[Archive]:
    need_tool("apt-ftparchive")
    main = AptRepo(tmp_path / "www" / "debian", debian_key)
    for deb in debs["first"]:
        main.add(deb)
    main.publish()
    security = AptRepo(tmp_path / "www" / "debian-security", debian_key)
    security.publish("stable-security")  # empty until a fix is published
    server = RepoServer(tmp_path / "www")
    yield Archive(main, security, server, debs)
    server.stop()


def recipe_text(mirror: str, security_mirror: str, keyring: Path) -> str:
    return f"""\
name: fresh
platforms: [amd64, arm64]
sources:
  debian:
    - suites: [stable]
      mirror: {mirror}
      keyring: {keyring}
    - suites: [stable-security]
      mirror: {security_mirror}
      keyring: {keyring}
packages: [app, tool, base]
"""
