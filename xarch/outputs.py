"""Where a build goes: `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from xarch.errors import ExitCode, InputError
from xarch.oci.digest import platform_name
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.image import Image
from xarch.oci.layout import Artifact, write_layout, write_oci_archive
from xarch.platforms import Platform

KINDS = ("oci", "oci-archive", "docker-archive")


class OutputError(InputError):
    pass


@dataclass(frozen=True)
class OutputSpec:
    kind: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> OutputSpec:
        kind, sep, path = text.partition(":")
        if not sep or kind not in KINDS or not path:
            expected = "oci:DIR, oci-archive:FILE or docker-archive:FILE"
            raise OutputError(f"--output {text!r}: expected {expected}")
        return cls(kind, Path(path))

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def check_outputs(specs: list[OutputSpec], built: tuple[Platform, ...], docker_platform: Platform) -> None:
    """Refuse, before anything is built or written, outputs the build cannot fill."""
    wants_docker = any(spec.kind == "docker-archive" for spec in specs)
    if wants_docker and docker_platform.name not in [p.name for p in built]:
        names = ", ".join(p.name for p in built)
        raise OutputError(f"docker-archive: platform {docker_platform.name} is not built (built: {names}); "
                          "choose one with --docker-platform")


def image_for(artifact: Artifact, platform: Platform) -> Image:
    for image in artifact.images:
        if image.platform == platform.oci_platform():
            return image
    built = ", ".join(platform_name(i.platform) for i in artifact.images)
    raise OutputError(f"docker-archive: platform {platform.name} was not built (built: {built})")


def write_output(
    artifact: Artifact, spec: OutputSpec, epoch: int, repo_tag: str, docker_platform: Platform
) -> None:
    """Write SPEC whole or not at all (xarch/oci/atomic.py); OutputError naming it when the
    disk fills up or the folder is not writable (exit 3 for a full disk, else 2)."""
    try:
        if spec.kind == "oci":
            write_layout(artifact, spec.path)
        elif spec.kind == "oci-archive":
            write_oci_archive(artifact, spec.path, epoch)
        else:
            write_docker_archive(image_for(artifact, docker_platform), [repo_tag], spec.path, epoch)
    except OSError as error:
        # A write() that fails names no file: say which output it was.
        failure = OutputError(f"--output {spec}: cannot write: {error.strerror or error}")
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            failure.exit_code = ExitCode.HOST
        raise failure from None
