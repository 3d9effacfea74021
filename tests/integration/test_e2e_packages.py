"""End to end: a recipe's Debian packages, xarch.lock and accounts through the real CLI.

The archive is the hermetic signed repository of tests/support/aptrepo.py served on
127.0.0.1: no network, a few seconds per build.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import docker
import pytest
import requests

from tests.support.aptrepo import RepoServer
from tests.support.dockerd import unique_tag
from tests.support.e2e import EPOCH, REPO, image_files, layout_bytes, xarch, xarch_ok
from tests.support.needs import need_binfmt, need_tool
from xarch import platforms


def package_recipe(server: RepoServer, keyring: Path, packages: str = "[app]") -> str:
    return f"""\
name: pkg-e2e
platforms: [amd64, arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [stable]
    mirror: {server.url}
    keyring: {keyring}
packages: {packages}
accounts:
  groups:
    - {{name: web, gid: 101}}
    - {{name: extra, gid: 2000, members: [web]}}
  users:
    - {{name: web, uid: 101, gid: 101, home: /var/lib/web}}
"""


@pytest.fixture
def project(tmp_path: Path, apt_server: RepoServer, debian_keyring: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "xarch.yaml").write_text(package_recipe(apt_server, debian_keyring))
    return folder


def test_build_without_a_lock_creates_it_and_says_so(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    recipe = str(project / "xarch.yaml")
    result = xarch_ok("build", "-f", recipe, "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert "no xarch.lock yet" in result.stderr
    lock = (project / "xarch.lock").read_text()
    assert "name: app" in lock and "name: prelib" in lock and "name: libfake1" in lock
    for arch in ("amd64", "arm64"):
        files = image_files(out, arch)
        assert files["usr/bin/app"].data == f"#!/bin/sh\necho app {arch}\n".encode()
        assert "usr/share/prelib/data" in files
    # The second build finds the lock current and says nothing about it.
    again = xarch_ok("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out2'}",
                     cache=tmp_path / "cache")
    assert "xarch.lock" not in again.stderr


def test_locked_without_a_lock_fails_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = xarch("build", "-f", str(project / "xarch.yaml"), "--locked", "-o", f"oci:{out}",
                   cache=tmp_path / "cache")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("xarch: error: --locked: ")
    assert "xarch.lock does not exist" in result.stderr
    assert not (project / "xarch.lock").exists()
    assert not out.exists()


def test_locked_with_a_stale_lock_fails_and_touches_nothing(
        project: Path, tmp_path: Path, apt_server: RepoServer, debian_keyring: Path) -> None:
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "-q", "-o", f"oci:{out}", cache=cache)
    lock_before = (project / "xarch.lock").read_bytes()
    output_before = layout_bytes(out)
    (project / "xarch.yaml").write_text(package_recipe(apt_server, debian_keyring, "[app, plain]"))
    result = xarch("build", "-f", str(project / "xarch.yaml"), "--locked", "-q", "-o", f"oci:{out}",
                   cache=cache)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xarch: error: --locked: xarch.lock does not match the recipe: ")
    assert "package lists" in lines[0]
    assert (project / "xarch.lock").read_bytes() == lock_before
    assert layout_bytes(out) == output_before
    # Without --locked the same build re-resolves, says why, and installs the new package.
    result = xarch_ok("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", cache=cache)
    assert "xarch.lock is out of date (the package lists" in result.stderr
    assert "name: plain" in (project / "xarch.lock").read_text()
    assert "usr/bin/plain" in image_files(out, "amd64")


def test_show_scripts_lists_the_maintainer_scripts_not_run(project: Path, tmp_path: Path) -> None:
    result = xarch_ok("build", "-f", str(project / "xarch.yaml"), "--show-scripts", "-o",
                      f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    for arch in ("amd64", "arm64"):
        assert f"[{arch}] image: not run: app postinst" in result.stderr
        assert f"[{arch}] image: not run: app prerm" in result.stderr
    quiet = xarch_ok("build", "-f", str(project / "xarch.yaml"), "--no-cache", "-v", "-o",
                     f"oci:{tmp_path / 'out2'}", cache=tmp_path / "cache")
    assert "not run:" not in quiet.stderr


def test_accounts_become_passwd_and_group_lines(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    files = image_files(out, "arm64")
    passwd = files["etc/passwd"].data.decode().splitlines()
    group = files["etc/group"].data.decode().splitlines()
    assert "web:x:101:101::/var/lib/web:/usr/sbin/nologin" in passwd
    assert passwd[0].startswith("root:x:0:0:")
    assert "web:x:101:" in group and "extra:x:2000:web" in group
    home = files["var/lib/web"]
    assert (home.type, home.uid, home.gid) == (b"5", 101, 101)
    assert files["etc/shadow"].mode == 0o640


def test_a_second_build_needs_no_archive(project: Path, tmp_path: Path, apt_server: RepoServer) -> None:
    cache = tmp_path / "cache"
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "-q", "-o", f"oci:{tmp_path / 'first'}", cache=cache)
    apt_server.stop()
    # --no-cache: not the finished image, but the verified .debs in the store are reused.
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "--no-cache", "-q", "-o",
             f"oci:{tmp_path / 'second'}", cache=cache)
    assert layout_bytes(tmp_path / "first") == layout_bytes(tmp_path / "second")
    # With a fresh cache the same build does need the archive, and fails in one line.
    result = xarch("build", "-f", str(project / "xarch.yaml"), "-q", "-o", f"oci:{tmp_path / 'third'}",
                   cache=tmp_path / "fresh")
    assert result.returncode == 4  # network: the archive is unreachable, after the retries
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("xarch: error: "), result.stderr
    assert f"cannot fetch {apt_server.url}/" in result.stderr and "connection failed" in result.stderr
    assert not (tmp_path / "third").exists()


@pytest.mark.parametrize("where", ["image", "stage"])
def test_packages_without_a_debian_source_are_a_one_line_error(tmp_path: Path, where: str) -> None:
    body = "packages: [app]\n" if where == "image" else "stages:\n  build:\n    packages: [gcc]\n"
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: nosource\nplatforms: [amd64]\nepoch: {EPOCH}\n{body}")
    result = xarch("build", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = 4 if where == "image" else 6
    field = "packages" if where == "image" else "stages.build.packages"
    assert lines[0] == f"xarch: error: {recipe}:{line}: {field}: packages need an archive: add sources.debian"
    assert not (tmp_path / "out").exists()


# --- examples/nginx from the real Debian mirror, run in dockerd: slow ----------------------


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("arch", ["amd64", pytest.param("arm64", marks=pytest.mark.qemu)])
@pytest.mark.parametrize("name", ["nginx", "nginx-traced"])
def test_the_nginx_example_serves_its_page_as_uid_101(tmp_path: Path, dockerd: docker.DockerClient,
                                                      made_images: list[str], arch: str, name: str) -> None:
    if arch != platforms.host().name:
        need_binfmt(platforms.get(arch).qemu)
    example = tmp_path / name
    shutil.copytree(REPO / "examples" / name, example, ignore=shutil.ignore_patterns("dist"))
    if name == "nginx-traced":
        need_tool("curl")  # trace.probe
        # The committed xarch.trace still serves the page (trace.probe against the minimized image),
        # and the image is at most a third of examples/nginx's 36 MB (issue: ≤ 12 MB on amd64).
        xarch_ok("trace", "-f", str(example), "--check", "--platform", arch, "-q", cache=tmp_path / "cache",
                 timeout=1200)
    tag = unique_tag("xarch-test/nginx-example")
    made_images.append(tag)
    xarch_ok("build", "-f", str(example), "--locked", "-q", "-o", f"oci:{tmp_path / 'out'}",
             "--docker-platform", arch, "--load", tag, cache=tmp_path / "cache", timeout=1200)
    container = dockerd.containers.run(tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)},
                                       platform=f"linux/{arch}")
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        page, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline and page is None:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            except requests.RequestException:
                time.sleep(0.3)
        assert page is not None, container.logs().decode()[-2000:]
        assert page.status_code == 200
        assert page.text == (example / "html" / "index.html").read_text()
        top = container.top(ps_args="-o pid,uid,comm")
        users = {row[top["Titles"].index("UID")] for row in top["Processes"]}
        assert users == {"101"}, users  # master and worker: nothing runs as root
        if name == "nginx-traced":
            files = image_files(tmp_path / "out", arch)
            assert sum(len(member.data) for member in files.values()) <= 12_000_000
    finally:
        container.remove(force=True)
