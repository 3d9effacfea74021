"""The three projects of issue 13 as examples, built for amd64 and arm64 and run (amd64 natively,
arm64 under QEMU through binfmt_misc): examples/c-zlib (a Makefile linking zlib, cross-built),
examples/dockerfile (a multi-stage Dockerfile stage) and examples/flask-pip (Flask from pip).

The Flask test serves its own package index on 127.0.0.1 (the wheels `pip download` fetched
once for both architectures), so the stage's pip reads nothing else; it also checks that a
one-line app edit rebuilds without running pip again.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import unique_tag
from tests.support.e2e import REPO, xarch_ok
from tests.support.needs import missing, need_binfmt, need_tool, not_applicable
from xarch import platforms

ARCHES = ("amd64", "arm64")
MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.qemu]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One XARCH_CACHE for the module: the Debian packages are fetched once."""
    if platforms.host().name != "amd64":
        not_applicable("these examples run arm64 under QEMU on an amd64 host")
    need_binfmt("aarch64")
    return tmp_path_factory.mktemp("examples-cache")


def copy_example(name: str, target: Path) -> Path:
    shutil.copytree(REPO / "examples" / name, target, ignore=shutil.ignore_patterns("dist", "bin"))
    return target / "xarch.yaml"


def load_and_tag(layout: Path, arch: str, cache: Path) -> str:
    tag = unique_tag(f"xarch-test/example-{arch}")
    xarch_ok("load", str(layout), "--platform", arch, "-t", tag, cache=cache)
    return tag


def docker_run(tag: str, arch: str, *args: str) -> str:
    try:
        result = subprocess.run(["docker", "run", "--rm", "--platform", f"linux/{arch}", tag, *args],
                                capture_output=True, text=True, timeout=300, check=False)
    finally:
        subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_c_zlib_cross_builds_both_arches_and_runs(tmp_path: Path, cache: Path,
                                                 dockerd: docker.DockerClient) -> None:
    recipe = copy_example("c-zlib", tmp_path / "c-zlib")
    out = tmp_path / "out"
    log = xarch_ok("build", "-f", str(recipe), "--locked", "-o", f"oci:{out}", cache=cache,
                   timeout=1800).stderr
    assert "[arm64] stage build: cross" in log and "[amd64] stage build: native" in log
    for arch in ARCHES:
        output = docker_run(load_and_tag(out, arch, cache), arch)
        assert output == f"zlib 1.2.13 on {MACHINE[arch]}: 47 bytes -> 17 bytes -> 47 bytes\n"


def test_dockerfile_stage_builds_both_arches_runs_and_keeps_its_config(
        tmp_path: Path, cache: Path, dockerd: docker.DockerClient, arm64_busybox: Path) -> None:
    recipe = copy_example("dockerfile", tmp_path / "dockerfile")
    for arch, busybox in (("amd64", Path(need_tool("busybox"))),
                          ("arm64", arm64_busybox)):
        (recipe.parent / "web" / "bin" / arch).mkdir(parents=True)
        shutil.copy(busybox, recipe.parent / "web" / "bin" / arch / "busybox")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=cache, timeout=1800)
    for arch in ARCHES:
        tag = load_and_tag(out, arch, cache)
        inspect = ["docker", "image", "inspect", "--format", "{{json .Config}}", tag]
        config = json.loads(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)
        assert (config["User"], config["WorkingDir"]) == ("65534:65534", "/srv/www")
        assert config["Entrypoint"] == ["/bin/busybox", "httpd", "-f", "-p", "8080"]
        assert config["Labels"]["org.opencontainers.image.title"] == "dockerfile-example"
        page = _serve_once(tag, arch)  # its own entrypoint and cmd serve the site
        assert page == f"<h1>built by a Dockerfile stage on {MACHINE[arch]}</h1>\n"


def _serve_once(tag: str, arch: str) -> str:
    """Start TAG with its own entrypoint and cmd, fetch / from it, stop it."""
    started = subprocess.run(["docker", "run", "-d", "--rm", "--platform", f"linux/{arch}", "-p",
                              "127.0.0.1::8080", tag], capture_output=True, text=True, check=True)
    container = started.stdout.strip()
    try:
        port = subprocess.run(["docker", "port", container, "8080"], capture_output=True, text=True,
                              check=True).stdout.split()[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{port}/", timeout=5) as response:
                    return str(response.read().decode())
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        subprocess.run(["docker", "stop", "-t", "1", container], capture_output=True, check=False)
        subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)


# --- Flask from pip, from a package index on 127.0.0.1 -------------------------------------------

@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned requirements as wheels for CPython 3.11 (Debian 12's) on amd64 and arm64."""
    folder = tmp_path_factory.mktemp("wheels")
    requirements = REPO / "examples" / "flask-pip" / "requirements.txt"
    for tag in ("manylinux2014_x86_64", "manylinux2014_aarch64"):
        result = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                                 "--platform", tag, "--python-version", "3.11", "--implementation", "cp",
                                 "--abi", "cp311", "-d", str(folder), "-r", str(requirements)],
                                capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            missing(f"the wheels of {requirements} from the host's package index (pip download): "
                    f"{result.stderr.strip().splitlines()[-1:]}")
    return folder


@pytest.fixture(scope="module")
def local_index(wheels: Path) -> Iterator[str]:
    """WHEELS served on 127.0.0.1 as a find-links page (a folder listing of the wheel files)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
            pass

    handler = functools.partial(Quiet, directory=str(wheels))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_flask_from_pip_builds_both_arches_runs_and_an_app_edit_skips_pip(
        tmp_path: Path, cache: Path, local_index: str, dockerd: docker.DockerClient) -> None:
    recipe = copy_example("flask-pip", tmp_path / "flask-pip")
    (recipe.parent / "pip.conf").write_text(f"[global]\nno-index = true\nfind-links = {local_index}\n"
                                           "no-cache-dir = true\ndisable-pip-version-check = true\n")
    out = tmp_path / "out"
    log = xarch_ok("build", "-f", str(recipe), "--locked", "-v", "-o", f"oci:{out}", cache=cache,
                   timeout=3600).stderr
    assert log.count("deps step 1/1: running") == 2, log
    for arch in ARCHES:
        output = docker_run(load_and_tag(out, arch, cache), arch, "--once")
        assert output == f"hello from Flask 3.1.3 on {MACHINE[arch]}\n"
    app = recipe.parent / "app" / "app.py"
    app.write_text(app.read_text().replace("hello from Flask", "hi from Flask"))
    started = time.monotonic()
    log = xarch_ok("build", "-f", str(recipe), "--locked", "-v", "-o", f"oci:{out}", cache=cache).stderr
    seconds = time.monotonic() - started
    assert log.count("deps step 1/1: cached") == 2 and "deps step 1/1: running" not in log, log
    print(f"one-line app edit: rebuilt both platforms in {seconds:.1f} s without running pip")
    for arch in ARCHES:
        output = docker_run(load_and_tag(out, arch, cache), arch, "--once")
        assert output == f"hi from Flask 3.1.3 on {MACHINE[arch]}\n"
