"""`xarch sbom`: print an image's attached SBOM."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from xarch import platforms as platform_data
from xarch.cli.options import Remote, remote_options
from xarch.errors import InputError
from xarch.registry.imageref import OCI, OCI_ARCHIVE, REGISTRY, ImageRef, parse_image_ref
from xarch.sbom.attach import MEDIA_TYPES
from xarch.sbom.lookup import NoSbom, find_attachments


def _choose_platform(platforms: dict[str, str], wanted: str | None, label: str) -> str:
    if wanted:
        try:
            name = platform_data.get(wanted).oci
        except platform_data.UnknownPlatform as error:
            raise InputError(f"--platform: {error}") from None
        if name not in platforms:
            raise InputError(f"--platform {wanted}: {label} has no such image ({', '.join(platforms)})")
        return name
    if len(platforms) == 1:
        return next(iter(platforms))
    host = platform_data.host().oci
    if host in platforms:
        return host
    raise InputError(f"{label} holds {', '.join(platforms)}; choose one with --platform")


@click.command("sbom")
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(list(MEDIA_TYPES)), default="spdx", show_default=True,
              help="SPDX 2.3 JSON or CycloneDX 1.5 JSON.")
@click.option("--platform", "platform", help="Whose SBOM (default: the only one, else the host's).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write it to FILE instead of stdout.")
@remote_options()
def sbom_command(image: str, fmt: str, platform: str | None, output: Path | None, remote: Remote) -> None:
    """Print (or write) the SBOM attached to IMAGE (registry reference, OCI layout or oci-archive)."""
    ref = parse_image_ref(image, (OCI, OCI_ARCHIVE, REGISTRY), "IMAGE")
    if output is not None:
        check_sbom_output(output, ref)  # before anything is read or downloaded
    found = find_attachments(ref, remote.settings(ref.reference))
    chosen = _choose_platform(found.platforms, platform, ref.label)
    digest = found.platforms[chosen]
    matches = sorted(row.digest for row in found.rows
                     if row.subject_digest == digest and row.artifact_type == MEDIA_TYPES[fmt])
    if not matches:
        raise NoSbom(f"{ref.label}: no {fmt} SBOM is attached to {chosen} ({digest}); build with "
                     f"`xarch build --sbom {fmt}`")
    data = found.payloads[matches[0]]()
    if output is None:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()
        return
    from xarch.oci.atomic import atomic_file

    with atomic_file(output) as handle:
        handle.write(data)


def check_sbom_output(output: Path, ref: ImageRef) -> None:
    """Refuse (InputError, one line naming -o) an `sbom -o FILE` that would destroy data: FILE is
    replaced only when missing, a regular file or a symlink (the link itself is replaced), never a
    folder, FIFO, socket or device (whoever reads it would be cut off), never the image read
    (an oci-archive) and never a file inside an OCI layout (its index.json or a blob)."""
    import os

    named = output.name not in ("", ".", "..")
    where = output.parent.resolve() / output.name if named else output.resolve()
    if not named or where.is_dir() and not where.is_symlink():
        raise InputError(f"-o {output}: is a folder; -o names the file to write")
    if where.exists() and not where.is_symlink() and not where.is_file():
        raise InputError(f"-o {output}: exists and is not a regular file (a FIFO, socket or device); "
                         "remove it or choose another path")
    being_read = ref.path is not None and where.is_file() and os.path.samefile(where, ref.path)
    if being_read and not where.is_symlink():
        raise InputError(f"-o {output}: is the image being read ({ref.label})")
    for folder in where.parents:
        if (folder / "oci-layout").is_file():
            raise InputError(f"-o {output}: is inside the OCI layout {folder}; writing there would "
                             "damage it, choose a path outside")
