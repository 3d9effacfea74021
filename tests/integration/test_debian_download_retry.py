"""A mirror that drops a connection mid-body: retried, resumed with Range (or restarted), verified.

The server is tests/support/aptrepo.py's real http.server on 127.0.0.1, made to send a full
Content-Length and then close the connection after half the body.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, Faults, RepoServer, stored_blobs
from xarch import platforms
from xarch.errors import ExitCode
from xarch.oci.store import Store
from xarch.sources.debian import http
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.debian.errors import DownloadError, FetchError
from xarch.sources.debian.fetch import fetch_packages
from xarch.sources.debian.lock import Lock, LockedPackage, resolve_lock

pytest_plugins = ["tests.support.debian_fixtures"]

AMD64, ARM64 = platforms.get("amd64"), platforms.get("arm64")


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same retries, shorter waits: the schedule is not what these tests are about."""
    monkeypatch.setattr(http, "BACKOFF", 0.01)


# Starts a RepoServer with the given faults; the source that reads from it.
Serve = Callable[[Faults], tuple[RepoServer, DebianSource]]


@pytest.fixture
def serve(apt_repo: AptRepo, debian_keyring: Path) -> Iterator[Serve]:
    servers: list[RepoServer] = []

    def start(faults: Faults) -> tuple[RepoServer, DebianSource]:
        server = RepoServer(apt_repo.root, faults)
        servers.append(server)
        return server, DebianSource(suites=["stable"], mirror=server.url, keyring=debian_keyring)

    yield start
    for server in servers:
        server.stop()


def locked(source: DebianSource, packages: list[str]) -> Lock:
    return resolve_lock(source, PackageSelection(packages=packages), [AMD64, ARM64])


def big_entry(source: DebianSource) -> LockedPackage:
    """The app package of amd64: big enough that half of it is more than one chunk."""
    return next(e for e in locked(source, ["app"]).entries("amd64") if e.name == "app")


@pytest.mark.parametrize("ranges", [True, False], ids=["range-206", "no-range-200"])
def test_a_deb_dropped_once_is_resumed_or_restarted_and_verified(serve: Serve, debian_store: Store,
                                                                 ranges: bool) -> None:
    faults = Faults(ranges=ranges)
    _server, source = serve(faults)
    entry = big_entry(source)
    faults.drops[entry.filename] = 1
    fetch_packages([entry], source.base_url(), debian_store, show_bar=False, say=lambda _m: None)
    assert stored_blobs(debian_store) == [entry.sha256]  # and the store checked the sha256
    gets = [(range_, status) for path, range_, status in faults.seen if path.endswith(entry.filename)]
    half = entry.size // 2
    if ranges:
        assert gets == [(None, 200), (f"bytes={half}-", 206)]
    else:
        assert gets == [(None, 200), (f"bytes={half}-", 200)]


def test_inrelease_and_packages_dropped_once_still_lock(serve: Serve) -> None:
    drops = {"/InRelease": 1, "/Packages.xz": 1, "/Packages.gz": 1, "/Packages": 1}
    faults = Faults(drops=drops)
    _server, source = serve(faults)
    lock = locked(source, ["app"])
    assert {e.name for e in lock.entries("amd64")} >= {"app", "prelib"}
    resumed = [path for path, range_, status in faults.seen if range_ and status == 206]
    assert any(path.endswith("/InRelease") for path in resumed)
    assert any("/Packages" in path for path in resumed)


def test_a_mirror_that_keeps_dropping_is_one_network_error(serve: Serve, debian_store: Store) -> None:
    faults = Faults()
    _server, source = serve(faults)
    entry = big_entry(source)
    faults.drops[entry.filename] = 1000
    with pytest.raises(DownloadError) as caught:
        fetch_packages([entry], source.base_url(), debian_store, show_bar=False, say=lambda _m: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot fetch {source.base_url()}/{entry.filename}: connection closed after")
    assert f"gave up after {http.RETRIES + 1} attempts" in message
    assert caught.value.exit_code == ExitCode.NETWORK
    assert len([p for p, _r, _s in faults.seen if p.endswith(entry.filename)]) == http.RETRIES + 1
    # Nothing half-downloaded in the store: no blob, no temporary file.
    assert stored_blobs(debian_store) == []


def test_a_file_changed_between_the_drop_and_the_resume_is_not_stored(serve: Serve,
                                                                      debian_store: Store) -> None:
    """The resume joins two different files: the sha256 check after the resume refuses the whole."""

    def change(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2:]))

    faults = Faults(ranges=True, after_drop=change)
    _server, source = serve(faults)
    entry = big_entry(source)
    faults.drops[entry.filename] = 1
    mismatch = r"sha256 is [0-9a-f]{64}, expected " + entry.sha256 + ".*nothing was stored"
    with pytest.raises(FetchError, match=mismatch):
        fetch_packages([entry], source.base_url(), debian_store, show_bar=False, say=lambda _m: None)
    assert [s for p, _r, s in faults.seen if p.endswith(entry.filename)] == [200, 206]
    assert stored_blobs(debian_store) == []


def test_the_cli_says_one_line_and_exits_4(serve: Serve, tmp_path: Path, debian_keyring: Path) -> None:
    """`xarch lock` against a mirror that drops InRelease every time (the real process, real waits)."""
    server, _source = serve(Faults(drops={"/InRelease": 1000}))
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(
        "name: t\nplatforms: [amd64]\nepoch: 1700000000\nsources:\n  debian:\n    suites: [stable]\n"
        f"    mirror: {server.url}\n    keyring: {debian_keyring}\npackages: [prelib]\n"
    )
    xarch = str(Path(sys.executable).parent / "xarch")
    env = {"PATH": "/usr/bin:/bin", "XARCH_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([xarch, "lock", "-f", str(recipe)], capture_output=True, text=True, timeout=120,
                            check=False, env=env)
    errors = [line for line in result.stderr.splitlines() if line.startswith("xarch: error:")]
    assert result.returncode == ExitCode.NETWORK, result.stderr
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr  # no traceback
    url = f"{server.url}/dists/stable/InRelease"
    assert errors[0].startswith(f"xarch: error: cannot fetch {url}: connection closed after")
    assert not (tmp_path / "xarch.lock").exists()
