"""Find the attachments of an image in an OCI layout, an oci-archive or a registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xarch.errors import InputError
from xarch.oci.artifact import PREDICATE_ANNOTATION
from xarch.oci.digest import platform_name
from xarch.registry.imageref import REGISTRY, ImageRef

if TYPE_CHECKING:
    from xarch.registry.client import Settings


class NoSbom(InputError):
    """The image has no SBOM of the asked format for the platform (exit 2)."""


@dataclass
class _Found:
    rows: list[ReferrerRow]
    payloads: dict[str, Any]  # referrer digest -> () -> bytes (fetched lazily for a registry)
    platforms: dict[str, str]  # platform name -> manifest digest


def _from_layout(path: Path) -> _Found:
    """The attachments of the layout folder or oci-archive at PATH, read in place (xarch.oci.model)."""
    from xarch.oci.layout import LayoutReader
    from xarch.oci.model import ImageIndex, images_of, layout_top
    from xarch.registry.referrers import layout_attachments

    reader = LayoutReader(path)
    try:
        top = layout_top(reader)
        platforms = {platform_name(image.descriptor.platform or {}): image.descriptor.digest
                     for image in images_of(top) if image.descriptor is not None}
        top_digest = top.digest if isinstance(top, ImageIndex) else next(iter(platforms.values()), "")
    finally:
        reader.close()
    names = {digest: name for name, digest in platforms.items()} | {top_digest: "index"}
    rows, payloads = [], {}
    for attached in layout_attachments(path):
        subject = names.get(attached.subject.digest, "other")
        rows.append(ReferrerRow(subject, attached.subject.digest, attached.digest, attached.artifact_type,
                                attached.annotations.get(PREDICATE_ANNOTATION, "")))
        payloads[attached.digest] = (lambda data=attached.payload: data)
    return _Found(rows, payloads, platforms)


def _from_registry(reference: str, settings: Settings | None) -> _Found:
    from xarch.registry.client import Settings
    from xarch.registry.pull import fetch_image
    from xarch.registry.push import make_client
    from xarch.registry.reference import parse_reference
    from xarch.registry.referrers import fetch_attachment, list_referrers

    settings = settings or Settings()
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


def find_attachments(ref: ImageRef, settings: Settings | None = None) -> _Found:
    """Every attachment (SBOM, provenance, attestation) of the image REF names, on the index and on
    each platform manifest: rows to list, {referrer digest: () -> payload bytes} fetched on demand,
    and {platform name: manifest digest}. A layout or oci-archive is read through its index
    (OCI image-layout spec); a registry through the referrers API or its tag fallback (distribution
    spec). Raises LayoutError/ImageRefError (exit 2), RegistryError and its kin (exit 4).
    """
    if ref.kind == REGISTRY:
        assert ref.reference is not None
        return _from_registry(ref.reference, settings)
    assert ref.path is not None
    return _from_layout(ref.path)


@dataclass(frozen=True)
class ReferrerRow:
    """One attachment: what it is about (a platform, or "index") and what it is."""

    subject: str  # "linux/amd64", or "index"
    subject_digest: str
    digest: str
    artifact_type: str
    predicate_type: str = ""
