"""`xarch sbom` and the referrers part of `xarch inspect`: read what is attached to an image.

An image is a registry reference, an OCI layout folder or an oci-archive. From a layout the
attachments are the index.json entries that carry an `artifactType` (xarch.oci.artifact); from a
registry they are the referrers of the index and of each platform manifest
(xarch.registry.referrers: the API, else the `sha256-<hex>` tag). Every manifest and payload is
checked against its digest before it is used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from xarch import platforms as platform_data
from xarch.errors import InputError
from xarch.oci.artifact import IN_TOTO, PREDICATE_ANNOTATION
from xarch.oci.digest import platform_name
from xarch.registry.imageref import OCI, OCI_ARCHIVE, REGISTRY, ImageRef, parse_image_ref
from xarch.sbom.attach import FORMAT_OF, MEDIA_TYPES
from xarch.visible import visible


class NoSbom(InputError):
    """The image has no SBOM of the asked format for the platform (exit 2)."""


@dataclass(frozen=True)
class ReferrerRow:
    """One attachment: what it is about (a platform, or "index") and what it is."""

    subject: str  # "linux/amd64", or "index"
    subject_digest: str
    digest: str
    artifact_type: str
    predicate_type: str = ""


@dataclass
class _Found:
    rows: list[ReferrerRow]
    payloads: dict[str, Any]  # referrer digest -> () -> bytes (fetched lazily for a registry)
    platforms: dict[str, str]  # platform name -> manifest digest


@contextmanager
def _layout(ref: ImageRef) -> Iterator[Path]:
    from xarch.registry.layout_source import layout_folder

    assert ref.path is not None
    with ExitStack() as stack:
        yield stack.enter_context(layout_folder(ref.path)) if ref.kind == OCI_ARCHIVE else ref.path


def _from_layout(folder: Path) -> _Found:
    from xarch.registry.layout_source import read_layout
    from xarch.registry.referrers import layout_attachments

    image = read_layout(folder)
    platforms = {platform_name(m.descriptor.get("platform") or {}): m.digest for m in image.manifests}
    names = {digest: name for name, digest in platforms.items()} | {image.top_descriptor["digest"]: "index"}
    rows, payloads = [], {}
    for attached in layout_attachments(folder):
        subject = names.get(attached.subject.digest, "other")
        rows.append(ReferrerRow(subject, attached.subject.digest, attached.digest, attached.artifact_type,
                                attached.annotations.get(PREDICATE_ANNOTATION, "")))
        payloads[attached.digest] = (lambda data=attached.payload: data)
    return _Found(rows, payloads, platforms)


def _from_registry(reference: str, insecure: bool) -> _Found:
    from xarch.registry.client import Settings
    from xarch.registry.pull import fetch_image
    from xarch.registry.push import make_client
    from xarch.registry.reference import parse_reference
    from xarch.registry.referrers import fetch_attachment, list_referrers

    settings = Settings(insecure=insecure)
    ref = parse_reference(reference)
    pulled = fetch_image(ref, None, settings, with_configs=False)
    platforms = {m.platform_name: m.digest for m in pulled.manifests}
    subjects = [("index", pulled.digest)] if pulled.is_index else []
    subjects += [(name, digest) for name, digest in platforms.items()]
    client = make_client(ref, None, settings)
    rows, payloads = [], {}
    for name, digest in subjects:
        for descriptor in list_referrers(client, ref.repository, digest).descriptors:
            annotations = descriptor.get("annotations")
            predicate = annotations.get(PREDICATE_ANNOTATION, "") if isinstance(annotations, dict) else ""
            referrer = str(descriptor["digest"])
            rows.append(ReferrerRow(name, digest, referrer, str(descriptor.get("artifactType", "")),
                                    str(predicate)))
            payloads[referrer] = (lambda d=descriptor: fetch_attachment(client, ref.repository, d)[1])
    return _Found(rows, payloads, platforms)


def _found(ref: ImageRef, insecure: bool) -> _Found:
    if ref.kind == REGISTRY:
        assert ref.reference is not None
        return _from_registry(ref.reference, insecure)
    with _layout(ref) as folder:
        found = _from_layout(folder)
    return found


def referrer_rows(path: Path, kind: str) -> list[ReferrerRow]:
    """The attachments of the OCI layout or oci-archive at PATH ([] for a docker-archive)."""
    if kind not in (OCI, OCI_ARCHIVE):
        return []
    from xarch.oci.layout import LayoutReader

    reader = LayoutReader(path)  # index.json alone says whether there is anything to read
    try:
        entries = reader.top_index().get("manifests") or []
    finally:
        reader.close()
    if not any(isinstance(entry, dict) and entry.get("artifactType") for entry in entries):
        return []
    return _found(ImageRef(kind, str(path), path), False).rows


def print_referrers(rows: list[ReferrerRow]) -> None:
    """One line per attachment under the inspect table (nothing when there is none)."""
    for row in rows:
        what = FORMAT_OF.get(row.artifact_type) or ("in-toto" if row.artifact_type == IN_TOTO
                                                     else row.artifact_type)
        predicate = f" ({row.predicate_type})" if row.predicate_type else ""
        # The types come from the registry or layout: control characters are escaped (xarch.visible).
        click.echo(visible(f"referrer {row.digest} {what}{predicate} -> {row.subject} {row.subject_digest}"))


def rows_json(rows: list[ReferrerRow]) -> list[dict[str, str]]:
    return [asdict(row) for row in rows]


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
@click.option("--insecure", is_flag=True, help="For a registry image: plain HTTP / no TLS verification.")
def sbom_command(image: str, fmt: str, platform: str | None, output: Path | None, insecure: bool) -> None:
    """Print (or write) the SBOM attached to IMAGE (registry reference, OCI layout or oci-archive)."""
    ref = parse_image_ref(image, (OCI, OCI_ARCHIVE, REGISTRY), "IMAGE")
    if output is not None:
        check_sbom_output(output, ref)  # before anything is read or downloaded
    found = _found(ref, insecure)
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


@click.command("referrers")
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--insecure", is_flag=True, help="For a registry image: plain HTTP / no TLS verification.")
def referrers_command(image: str, as_json: bool, insecure: bool) -> None:
    """List what is attached to IMAGE (registry reference, OCI layout or oci-archive): SBOMs,
    provenance, reproduction attestations, each with the manifest or index it is about."""
    import json

    ref = parse_image_ref(image, (OCI, OCI_ARCHIVE, REGISTRY), "IMAGE")
    rows = _found(ref, insecure).rows
    if as_json:
        click.echo(json.dumps(rows_json(rows), indent=2, sort_keys=True))
        return
    print_referrers(rows)
