"""Where a build goes: `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`.

An output replaces only what is safe to replace (see `check_target`): an existing OCI
layout (or an empty folder) for `oci:`, a regular file for the archives; never the current
folder or one above it, never the recipe, its lock or a folder holding them.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xarch.errors import ExitCode, InputError
from xarch.oci.digest import platform_name
from xarch.oci.layout import Artifact, write_layout, write_oci_archive

if TYPE_CHECKING:  # not loaded by a build replayed from its record (xarch.cli.replay)
    from xarch.oci.image import Image
    from xarch.platforms import Platform

KINDS = ("oci", "oci-archive", "docker-archive")


class OutputError(InputError):
    """An output that cannot be written, or must not be (it would destroy other data); exit 2."""


@dataclass(frozen=True)
class OutputSpec:
    """One `--output KIND:PATH` (KIND in KINDS), parsed; str() gives it back as typed."""

    kind: str
    path: Path
    text: str = field(default="", compare=False)  # as the user typed it (Path drops a trailing /.)

    @classmethod
    def parse(cls, text: str) -> OutputSpec:
        """`oci:DIR`, `oci-archive:FILE` or `docker-archive:FILE` (split at the first ":"); raises
        OutputError (exit 2) for an unknown kind or an empty path. The path is not checked here."""
        kind, sep, path = text.partition(":")
        if not sep or kind not in KINDS or not path:
            expected = "oci:DIR, oci-archive:FILE or docker-archive:FILE"
            raise OutputError(f"--output {text!r}: expected {expected}")
        return cls(kind, Path(path), text)

    def __str__(self) -> str:
        return self.text or f"{self.kind}:{self.path}"


def _location(path: Path) -> Path:
    """Where PATH points, as the rename in xarch.oci.atomic will see it: the parent resolved, the
    name itself kept (a symlink output is replaced as a link, its target untouched)."""
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.parent.resolve() / path.name


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_target(spec: OutputSpec, recipe: Path | None = None) -> None:
    """Raise OutputError (one line naming the output) when writing SPEC would destroy data.

    `oci:DIR` replaces DIR only when DIR is missing, empty, or an OCI layout (has `oci-layout`
    and `index.json`); the archives replace only a regular file. Never `.`, `..`, the current
    folder or one above it; never RECIPE (the recipe file), its xarch.lock, or a folder holding them.
    """
    where = _location(spec.path)
    if spec.path.name in ("", ".", "..") or _is_within(Path.cwd().resolve(), where):
        raise OutputError(f"--output {spec}: is the current folder or one above it; name a folder of its own "
                          f"(e.g. {spec.kind}:dist/image)")
    if recipe is not None:
        recipe_file = _location(recipe)
        for precious in (recipe_file, recipe_file.parent / "xarch.lock"):
            if _is_within(precious, where):
                raise OutputError(f"--output {spec}: would replace {precious} (the recipe's own files)")
    if not (where.exists() or where.is_symlink()):
        return
    if spec.kind == "oci":
        if where.is_symlink():
            raise OutputError(f"--output {spec}: is a symbolic link; name the layout folder itself")
        if not where.is_dir():
            raise OutputError(f"--output {spec}: exists and is not a folder; remove it or choose another")
        if not _is_layout(where) and any(os.scandir(where)):
            raise OutputError(f"--output {spec}: is a folder that is not an OCI layout (no oci-layout and "
                              "index.json); xarch replaces only a layout, remove it or choose another path")
    elif where.is_symlink():
        return  # the rename replaces the link itself, never what it points to
    elif where.is_dir():
        raise OutputError(f"--output {spec}: is a folder; {spec.kind} writes a file")
    elif not where.is_file():
        # A FIFO, socket or device would be replaced by a file, and whoever used it cut off.
        raise OutputError(f"--output {spec}: exists and is not a regular file; xarch replaces only a "
                          "regular file, remove it or choose another path")


def _is_layout(folder: Path) -> bool:
    return (folder / "oci-layout").is_file() and (folder / "index.json").is_file()


def check_outputs(specs: list[OutputSpec], built: tuple[Platform, ...], docker_platform: Platform,
                  recipe: Path | None = None) -> None:
    """Refuse, before anything is built or written, outputs the build cannot fill or that would
    destroy data (check_target; RECIPE is the recipe file). Raises OutputError (exit 2), also
    when a docker-archive is asked for and DOCKER_PLATFORM is not among BUILT."""
    check_targets(specs, recipe)
    wants_docker = any(spec.kind == "docker-archive" for spec in specs)
    if wants_docker and docker_platform.name not in [p.name for p in built]:
        names = ", ".join(p.name for p in built)
        raise OutputError(f"docker-archive: platform {docker_platform.name} is not built (built: {names}); "
                          "choose one with --docker-platform")


def check_targets(specs: list[OutputSpec], recipe: Path | None = None) -> None:
    """check_target for each of SPECS, and no two at one path (or one inside the other)."""
    for spec in specs:
        check_target(spec, recipe)
    # Two outputs at one path (or one inside the other): the second rename would silently replace
    # the first, e.g. `-o oci-archive:x.tar -o docker-archive:x.tar` left only one archive.
    for index, spec in enumerate(specs):
        for other in specs[:index]:
            here, there = _location(spec.path), _location(other.path)
            if _is_within(here, there) or _is_within(there, here):
                raise OutputError(f"--output {other} and --output {spec}: the same path, or one inside "
                                  "the other; give each output a place of its own")


def image_for(artifact: Artifact, platform: Platform) -> Image:
    """The image of ARTIFACT whose OCI platform (image-index `platform` object) is PLATFORM's;
    raises OutputError (exit 2) naming the built platforms when there is none."""
    for image in artifact.images:
        if image.platform == platform.oci_platform():
            return image
    built = ", ".join(platform_name(i.platform) for i in artifact.images)
    raise OutputError(f"docker-archive: platform {platform.name} was not built (built: {built})")


def write_output(
    artifact: Artifact, spec: OutputSpec, epoch: int, repo_tag: str | list[str],
    docker_platform: Platform | None, recipe: Path | None = None,
) -> None:
    """Write SPEC whole or not at all (xarch/oci/atomic.py), checked again (check_target) since the
    folder may have changed during the build; OutputError naming it when the disk fills up or the
    folder is not writable (exit 3 for a full disk, else 2). DOCKER_PLATFORM is needed for a
    docker-archive only."""
    check_target(spec, recipe)
    try:
        if spec.kind == "oci":
            write_layout(artifact, spec.path)
        elif spec.kind == "oci-archive":
            write_oci_archive(artifact, spec.path, epoch)
        else:
            if docker_platform is None:
                raise OutputError(f"--output {spec}: no platform chosen for the docker-archive")
            from xarch.oci.dockerarchive import write_docker_archive

            tags = [repo_tag] if isinstance(repo_tag, str) else list(repo_tag)  # -t, repeatable
            write_docker_archive(image_for(artifact, docker_platform), tags, spec.path, epoch)
    except OSError as error:
        # A write() that fails names no file: say which output it was.
        failure = OutputError(f"--output {spec}: cannot write: {error.strerror or error}")
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            failure.exit_code = ExitCode.HOST
        raise failure from None
