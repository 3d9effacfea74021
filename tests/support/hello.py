"""The bundled example (examples/hello), its busybox binaries, and the real CLI in a subprocess.

tests/conftest.py registers the fixtures; a test names them as arguments (`hello_binaries`, …).
The example is built once per session (`hello_build`); tests that change a recipe copy it
into a tmp folder with `copy_hello`.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.needs import missing

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
ARCHES = ("amd64", "arm64")

# Builds in tests share one image cache per session, never the user's (~/.cache/xarch): an
# image from an earlier run, or from the user's own builds, must not stand in for a build.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="xarch-test-cache-"))
atexit.register(shutil.rmtree, SESSION_CACHE, True)


def run_xarch(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
    timeout: float = 300,
    cache: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real CLI (`python -m xarch.cli ARGS`) in a subprocess, as a user would run it.

    XARCH_CACHE is CACHE, else the session's test cache.
    """
    # A SOURCE_DATE_EPOCH of the caller's shell would override the recipe's epoch.
    full_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"} if env is None else dict(env)
    full_env["XARCH_CACHE"] = str(cache or SESSION_CACHE)
    # The package is imported from the repository even when cwd is elsewhere.
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "xarch.cli", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
        preexec_fn=preexec_fn, check=False,
    )


def run_ok(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = run_xarch(*args, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, f"xarch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def hello_binaries() -> Path:
    """examples/hello/bin/<arch>/busybox for amd64 and arm64, fetched by the example's script."""
    absent = [arch for arch in ARCHES if not (HELLO / "bin" / arch / "busybox").is_file()]
    if absent:
        result = subprocess.run([str(HELLO / "fetch-busybox"), *absent], capture_output=True, text=True,
                                check=False, timeout=600)
        if result.returncode != 0:
            missing(f"examples/hello/fetch-busybox failed: {result.stderr.strip()[-500:]}")
    return HELLO / "bin"


def copy_hello(target: Path) -> Path:
    """A copy of the example's folder (binaries included, no dist/) at TARGET; returns its recipe."""
    shutil.copytree(HELLO, target, ignore=shutil.ignore_patterns("dist"), symlinks=True)
    return target / "xarch.yaml"


@dataclass(frozen=True)
class HelloBuild:
    """One build of the example for amd64,arm64 written to every kind of output."""

    layout: Path
    oci_archive: Path
    docker_archives: dict[str, Path]  # arch → docker-archive of that platform
    summary: dict  # the build's --json output

    @property
    def index_digest(self) -> str:
        return str(self.summary["index_digest"])


@pytest.fixture(scope="session")
def hello_build(hello_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> HelloBuild:
    out = tmp_path_factory.mktemp("hello-build")
    recipe = str(HELLO / "xarch.yaml")
    result = run_ok("build", "-f", recipe, "--platform", "amd64,arm64", "--json",
                    "-o", f"oci:{out / 'layout'}", "-o", f"oci-archive:{out / 'hello.oci.tar'}",
                    "-o", f"docker-archive:{out / 'hello-amd64.docker.tar'}", "--docker-platform", "amd64")
    run_ok("build", "-f", recipe, "-q", "-o", f"docker-archive:{out / 'hello-arm64.docker.tar'}",
           "--docker-platform", "arm64")
    return HelloBuild(
        out / "layout", out / "hello.oci.tar",
        {"amd64": out / "hello-amd64.docker.tar", "arm64": out / "hello-arm64.docker.tar"},
        json.loads(result.stdout),
    )
