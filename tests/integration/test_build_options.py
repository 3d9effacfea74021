"""`xarch build` options a buildx user expects: several -t and --push, --label, --strategy cross
with the host's own architecture (native, decided before anything is fetched)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from tests.integration.test_step_inputs import _everything as everything
from tests.support.dockerd import unique_tag
from tests.support.e2e import EPOCH, image_files, index_digest, xarch, xarch_ok
from tests.support.needs import need_tool
from tests.support.registry import Registry
from tests.support.stages import SHELL, write_recipe
from xarch import platforms

HOST = platforms.host().name

FILES_RECIPE = f"""\
name: options
platforms: [{HOST}]
epoch: {EPOCH}
files:
  - {{src: data.txt, dst: /data.txt}}
config:
  labels: {{from-recipe: "1", team: recipe}}
"""


def test_several_tags_name_a_docker_archive_and_labels_join_the_config(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "src", FILES_RECIPE, **{"data.txt": "data\n"})
    archive = tmp_path / "image.tar"
    xarch_ok("build", "-f", str(recipe), "-q", "-t", "team/app:1.0", "-t", "team/app", "--label", "team=cli",
             "--label", "org.opencontainers.image.version=1.0", "-o", f"docker-archive:{archive}",
             cache=tmp_path / "cache")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["team/app:1.0", "team/app:latest"]
    assert config["config"]["Labels"] == {"from-recipe": "1", "team": "cli",
                                          "org.opencontainers.image.version": "1.0"}


def test_a_bad_tag_or_label_is_one_line_before_the_build(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "src", FILES_RECIPE, **{"data.txt": "data\n"})
    for args, message in ((("-t", "Team/App"), "-t 'Team/App': "), (("--push", "x y"), "--push 'x y': "),
                          (("--label", "novalue"), "--label 'novalue': must be KEY=VALUE")):
        result = xarch("build", "-f", str(recipe), *args, "-o", f"oci:{tmp_path / 'out'}",
                       cache=tmp_path / "cache")
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("xarch: error: " + message), line
        assert not (tmp_path / "out").exists()


def test_one_build_pushes_to_several_references(tmp_path: Path, registry: Registry) -> None:
    skopeo = need_tool("skopeo")
    recipe = write_recipe(tmp_path / "src", FILES_RECIPE, **{"data.txt": "data\n"})
    out = tmp_path / "out"
    refs = [f"{registry.host}/{name}" for name in ("team/app:1.0", "team/app:latest", "mirror/app:1")]
    pushes = [arg for ref in refs for arg in ("--push", ref)]
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", *pushes, "--insecure",
             cache=tmp_path / "cache")
    for ref in refs:
        raw = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                             capture_output=True, check=True).stdout
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert digest == index_digest(out), ref


def test_strategy_cross_for_the_host_architecture_is_native(tmp_path: Path, busybox_shell: None) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: cross-host
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      - run: mkdir -p /out && echo built > /out/file
copy:
  - {{from: "build:/out/file", dst: /file}}
""")
    result = xarch_ok("build", "-f", str(recipe), "--strategy", "cross", "-o", f"oci:{tmp_path / 'out'}",
                      cache=tmp_path / "cache")
    assert f"stage build: native (cross asked for, but {HOST} is the host's architecture)" in result.stderr


@pytest.mark.docker
def test_recipe_args_reach_a_dockerfile_stage(tmp_path: Path, buildx: str) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: docker-args
platforms: [{HOST}]
epoch: {EPOCH}
args:
  GREETING: hello
stages:
  app:
    dockerfile: Dockerfile
copy:
  - {{from: "app:/greeting.txt", dst: /greeting.txt}}
""", **{"Dockerfile": "FROM scratch\nARG GREETING\nCOPY ${GREETING}.txt /greeting.txt\n",
        "hello.txt": "hello\n", "hi.txt": "hi\n"})
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "--build-arg", "GREETING=hi", "-o", f"oci:{out}",
             cache=tmp_path / "cache")
    assert image_files(out, HOST)["greeting.txt"].data == b"hi\n"


@pytest.mark.docker
def test_load_tags_the_image_with_every_tag(tmp_path: Path, dockerd: docker.DockerClient,
                                            made_images: list[str]) -> None:
    recipe = write_recipe(tmp_path / "src", FILES_RECIPE, **{"data.txt": "data\n"})
    tags = [unique_tag("xarch-test/tags-one"), unique_tag("xarch-test/tags-two")]
    made_images.extend(tags)
    result = xarch_ok("build", "-f", str(recipe), "-t", tags[0], "-t", tags[1], "--load", "-o",
                      f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    for tag in tags:
        assert f"into Docker as {tag}" in result.stderr
    ids = {dockerd.images.get(tag).id for tag in tags}
    assert len(ids) == 1  # one image, two names


@pytest.mark.docker
def test_a_dockerfile_stage_mounts_a_secret_and_keeps_none(tmp_path: Path, buildx: str) -> None:
    secret = "dockerfile-s3cret-9b1e"
    recipe = write_recipe(tmp_path / "src", f"""\
name: docker-secret
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  app:
    dockerfile: Dockerfile
copy:
  - {{from: "app:/length", dst: /length}}
""", **{"Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN --mount=type=secret,id=token ["/bin/busybox", "sh", "-c", '
        '"/bin/busybox wc -c < /run/secrets/token > /length; /bin/busybox cat /run/secrets/token"]\n'})
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = xarch_ok("build", "-f", str(recipe), "--no-cache", "--secret", "id=token,env=TOKEN", "-o",
                      f"oci:{out}", cache=cache, extra_env={"TOKEN": secret})
    assert image_files(out, HOST)["length"].data.strip() == str(len(secret)).encode()
    assert secret not in result.stderr + result.stdout
    assert "***" in result.stderr  # the RUN step printed it: shown masked
    assert secret.encode() not in everything(out) + everything(cache)


def test_a_strategy_this_host_cannot_run_fails_before_any_download(tmp_path: Path) -> None:
    """examples/hello-c has packages: an impossible strategy is one line before the lock or a fetch."""
    import shutil

    from tests.support.e2e import REPO

    other = "arm64" if HOST == "amd64" else "amd64"
    project = tmp_path / "hello-c"
    shutil.copytree(REPO / "examples" / "hello-c", project, ignore=shutil.ignore_patterns("dist"))
    cache = tmp_path / "cache"
    result = xarch("build", "-f", str(project), "--strategy", "native", "--platform", other, "-o",
                   f"oci:{tmp_path / 'out'}", cache=cache)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        f"xarch: error: stage 'build': strategy native cannot build {other} on a {HOST} host "
        "(use cross or emulate)"]
    assert not any(p.is_file() for p in cache.rglob("*")), "something was fetched first"
    assert not (tmp_path / "out").exists()
