"""pytest fixtures around tests/support/aptrepo.py: a signed repository served on 127.0.0.1.

tests/conftest.py registers them; a test names the ones it uses as arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, GpgKey, RepoServer, build_deb, fixture_packages
from tests.support.needs import need_tool
from xarch.oci.store import Store
from xarch.sources.debian.config import DebianSource


@pytest.fixture(scope="session")
def debian_key(tmp_path_factory: pytest.TempPathFactory) -> GpgKey:
    need_tool("gpg")
    need_tool("gpgv")
    return GpgKey(tmp_path_factory.mktemp("gnupg") / "home")


@pytest.fixture(scope="session")
def fixture_debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    need_tool("dpkg-deb")
    work = tmp_path_factory.mktemp("debs")
    return [build_deb(pkg, work / "roots", work / "out") for pkg in fixture_packages()]


@pytest.fixture
def apt_repo(tmp_path: Path, debian_key: GpgKey, fixture_debs: list[Path]) -> AptRepo:
    need_tool("apt-ftparchive")
    repo = AptRepo(tmp_path / "repo", debian_key)
    for deb in fixture_debs:
        repo.add(deb)
    repo.publish()
    return repo


@pytest.fixture
def apt_server(apt_repo: AptRepo) -> Iterator[RepoServer]:
    server = RepoServer(apt_repo.root)
    yield server
    server.stop()


@pytest.fixture
def debian_keyring(tmp_path: Path, debian_key: GpgKey) -> Path:
    return debian_key.export(tmp_path / "archive-keyring.gpg")


@pytest.fixture
def debian_source(apt_server: RepoServer, debian_keyring: Path) -> DebianSource:
    return DebianSource(suites=["stable"], mirror=apt_server.url, keyring=debian_keyring)


@pytest.fixture
def debian_store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")
