"""The image config a Dockerfile stage ends with (USER, EXPOSE, ENTRYPOINT, CMD, ENV, WORKDIR,
LABEL, STOPSIGNAL, VOLUME), for `config: {from: STAGE}` in a recipe.

The stage's files come from buildx's `type=tar` output, which has no config, so the same build
(every step a cache hit) is exported once more: with the `docker` driver (Debian 12's dockerd,
which cannot export OCI) as a nameless image in the engine, read with `docker image inspect`
and removed; with any other driver as an OCI tarball whose config blob is read.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from xarch.run.buildx import BuildxError, BuildxStage, buildx_command, find_docker, run_buildx


def builder_driver(docker: str, builder: str | None) -> str:
    """The driver of BUILDER (None: the current one): "docker", "docker-container", "remote", …,
    from the `Driver:` line of `docker buildx inspect`; BuildxError (exit 2) when it has none."""
    command = [docker, "buildx", "inspect", *([builder] if builder else [])]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Driver":
            return value.strip()
    raise BuildxError(f"docker buildx inspect {builder or ''} says no driver: {result.stderr.strip()[-200:]}")


def _with_output(command: list[str], output: str, metadata: Path) -> list[str]:
    changed = list(command)
    changed[changed.index("--output") + 1] = output
    return [*changed[:-1], "--metadata-file", str(metadata), changed[-1]]


def stage_config(stage: BuildxStage, oci_platform: str, workdir: Path, *,
                 log: Callable[[str], None] | None = None, docker: str | None = None) -> dict[str, Any]:
    """The `config` object (Docker/OCI image config: User, Env, Entrypoint, Cmd, WorkingDir,
    ExposedPorts, Labels, StopSignal, Volumes) of STAGE's final image for OCI_PLATFORM.
    The `docker` driver cannot export OCI, so there the image is loaded and `docker image
    inspect`ed (then removed if untagged); other drivers export `type=oci`. {} when the image has
    no config. Raises BuildxError (exit 2) when buildx fails or answers something that is not an
    image config, BuildxMissing (exit 3) without docker/buildx or an engine."""
    docker = docker or find_docker()
    stage = replace(stage, no_cache=False)  # the steps just ran: every one is a cache hit
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="buildx-config-", dir=workdir) as scratch:
        metadata = Path(scratch) / "metadata.json"
        base = buildx_command(docker, stage, oci_platform, Path(scratch) / "unused.tar")
        if builder_driver(docker, stage.builder) == "docker":
            run_buildx(_with_output(base, "type=image", metadata), oci_platform, log)
            image_id = str(json.loads(metadata.read_text()).get("containerimage.digest", ""))
            if not image_id.startswith("sha256:"):
                raise BuildxError(f"docker buildx build for {oci_platform} named no image in its metadata")
            inspect = subprocess.run([docker, "image", "inspect", "--format", "{{json .}}", image_id],
                                     capture_output=True, text=True, check=False)
            if inspect.returncode != 0:
                raise BuildxError(f"docker image inspect {image_id} failed: {inspect.stderr.strip()[-200:]}")
            found = json.loads(inspect.stdout)
            if not found.get("RepoTags"):
                # Nameless, so ours: removed again. An identical image someone tagged is left alone.
                subprocess.run([docker, "image", "rm", image_id], capture_output=True, check=False)
            config = found.get("Config")
        else:
            archive = Path(scratch) / "image.tar"
            run_buildx(_with_output(base, f"type=oci,dest={archive}", metadata), oci_platform, log)
            config = _oci_config(archive)
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BuildxError(f"docker buildx build for {oci_platform}: the image config is not a JSON object")
    return config


def _oci_config(archive: Path) -> Any:
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> Any:
            member = tar.extractfile("blobs/sha256/" + digest.removeprefix("sha256:"))
            if member is None:
                raise BuildxError(f"{archive}: no blob {digest}")
            return json.loads(member.read())

        index_file = tar.extractfile("index.json")
        if index_file is None:
            raise BuildxError(f"{archive}: no index.json")
        descriptor = json.loads(index_file.read())["manifests"][0]
        manifest = blob(descriptor["digest"])
        if "manifests" in manifest:  # an index of one platform
            manifest = blob(manifest["manifests"][0]["digest"])
        return blob(manifest["config"]["digest"]).get("config")
