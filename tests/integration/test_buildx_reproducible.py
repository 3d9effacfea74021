"""Issue 6 item 3: plain buildx is not reproducible; the same Dockerfile as an xarch stage is,
wherever the files are the same, and `xarch diff` names the files that are not.

The Dockerfile's one RUN step writes a fixed file (/srv/index.html) and one that changes
on every run (/var/log/build.log, a fresh UUID). It runs on the arm64 busybox base of
tests/support/dockerd.py, under QEMU.

BuildKit caches RUN steps across builds, so both sides build with --no-cache: the step
really runs again every time (checked in buildx's own log).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import unique_tag
from tests.support.e2e import EPOCH, image_files, manifests, xarch, xarch_ok
from tests.support.needs import missing, need_binfmt, need_tool

pytestmark = [pytest.mark.docker, pytest.mark.qemu]

RUN_STEP = ("RUN mkdir -p /srv /var/log"
            " && echo 'fixed content' > /srv/index.html"
            " && cat /proc/sys/kernel/random/uuid > /var/log/build.log")


@pytest.fixture
def buildx(dockerd: docker.DockerClient) -> str:
    docker_bin = need_tool("docker")
    if subprocess.run([docker_bin, "buildx", "version"], capture_output=True).returncode != 0:
        missing("docker buildx is not installed (scripts/setup-host installs it)")
    need_binfmt("aarch64")
    return docker_bin


def project(folder: Path, base: str, copy_from: str) -> Path:
    """A recipe folder with app/Dockerfile, its stage, and one copy out of it."""
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "Dockerfile").write_text(f"FROM {base}\n{RUN_STEP}\n")
    (folder / "xarch.yaml").write_text(f"""\
name: buildx-repro
platforms: [arm64]
epoch: {EPOCH}
stages:
  app: {{dockerfile: app/Dockerfile}}
copy:
  - {{from: "app:{copy_from}", dst: {copy_from}}}
""")
    return folder / "xarch.yaml"


def ran_again(log: str) -> bool:
    """Whether buildx's plain progress shows the RUN step executed, not taken from its cache."""
    step = re.search(r"(#\d+) \[\d+/\d+\] RUN mkdir", log)
    return step is not None and f"{step.group(1)} CACHED" not in log


def build_twice(recipe: Path, tmp_path: Path) -> tuple[Path, Path]:
    outs = []
    for number in (1, 2):
        out = tmp_path / f"out{number}"
        result = xarch_ok("build", "-f", str(recipe), "--no-cache", "-v", "-o", f"oci:{out}",
                          cache=tmp_path / "cache")
        assert ran_again(result.stderr), result.stderr
        outs.append(out)
    return outs[0], outs[1]


def test_plain_buildx_twice_gives_different_images(buildx: str, busybox_arm64_image: str, tmp_path: Path,
                                                  made_images: list[str]) -> None:
    recipe = project(tmp_path / "src", busybox_arm64_image, "/srv")
    context = recipe.parent / "app"
    ids = []
    for _ in (1, 2):
        tag = unique_tag("xarch-test/plain-buildx")
        made_images.append(tag)
        command = [buildx, "buildx", "build", "--no-cache", "--load", "--platform", "linux/arm64",
                   "--provenance=false", "-t", tag, str(context)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        inspect = subprocess.run([buildx, "image", "inspect", "--format", "{{json .}}", tag],
                                 capture_output=True, text=True, check=True)
        ids.append(json.loads(inspect.stdout)["Id"])
    print(f"plain buildx image IDs: {ids[0]} {ids[1]}")  # shown with pytest -s
    assert ids[0] != ids[1]


def test_the_stage_copied_by_path_is_identical_twice(buildx: str, busybox_arm64_image: str,
                                                     tmp_path: Path) -> None:
    recipe = project(tmp_path / "src", busybox_arm64_image, "/srv")
    first, second = build_twice(recipe, tmp_path)
    print(f"xarch manifests: {manifests(first)} {manifests(second)}")
    assert manifests(first) == manifests(second)
    files = image_files(first, "arm64")
    assert sorted(files) == ["srv", "srv/index.html"]
    assert files["srv/index.html"].data == b"fixed content\n"


def test_the_whole_stage_root_differs_and_diff_names_the_log(buildx: str, busybox_arm64_image: str,
                                                             tmp_path: Path) -> None:
    recipe = project(tmp_path / "src", busybox_arm64_image, "/")
    first, second = build_twice(recipe, tmp_path)
    assert manifests(first) != manifests(second)
    result = xarch("diff", str(first), str(second), "--json", cache=tmp_path / "cache")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["identical"]
    assert {d["item"] for d in report["differences"]} == {"var/log/build.log"}
    assert {d["field"] for d in report["differences"]} == {"content"}
    assert "index" in report["changed_digests"]


def test_no_cache_reruns_a_dockerfile_stage(buildx: str, busybox_arm64_image: str, tmp_path: Path) -> None:
    recipe = project(tmp_path / "src", busybox_arm64_image, "/")
    logs: list[bytes | None] = []
    for flags in ([], [], ["--no-cache"]):
        out = tmp_path / f"out{len(logs)}"
        xarch_ok("build", "-f", str(recipe), *flags, "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
        logs.append(image_files(out, "arm64")["var/log/build.log"].data)
    assert logs[0] == logs[1]  # without --no-cache BuildKit's cache serves the RUN step
    assert logs[2] != logs[1]  # with it the step ran again
