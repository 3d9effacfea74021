"""Read what a registry publishes: an index (or single manifest), its manifests and configs.

`xarch verify --against REF` compares per-platform manifest digests; `xarch diff` compares
configs and manifests; `pull_layout` writes a full OCI layout (blobs too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.oci.atomic import atomic_dir
from xarch.oci.digest import OCI_INDEX, REF_NAME, Descriptor, canonical_json, hex_of
from xarch.oci.layout import LayoutError
from xarch.oci.model import Image, ImageIndex, open_descriptor
from xarch.oci.schema import DocumentError
from xarch.oci.verified import BadDescriptor, descriptor_fields, json_object
from xarch.registry.auth import Credentials
from xarch.registry.client import RegistryClient, Settings
from xarch.registry.errors import CorruptAnswer
from xarch.registry.mediatypes import INDEXES, media_type_of, platform_name
from xarch.registry.push import make_client
from xarch.registry.reference import Reference, parse_reference
from xarch.registry.source import RegistrySource


@dataclass
class PulledManifest:
    """One image manifest as pulled: digest, media type, exact bytes and parsed JSON, the OCI platform
    from the index entry (None for a lone manifest), and the config blob's bytes when fetched.
    """

    digest: str
    media_type: str
    data: bytes
    json: dict[str, Any]
    platform: dict[str, str] | None
    config_data: bytes | None = None

    @property
    def platform_name(self) -> str:
        platform = self.platform or json.loads(self.config_data or b"{}")
        return platform_name(platform)


@dataclass
class PulledImage:
    """What REFERENCE names on the registry: its digest, media type and exact bytes (an index or one
    manifest), and its image manifests in index order (one for a lone manifest).
    """

    reference: Reference
    digest: str
    media_type: str
    data: bytes
    manifests: list[PulledManifest] = field(default_factory=list)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES


def fetch_image(target: str | Reference, credentials: Credentials | None = None,
                settings: Settings | None = None, with_configs: bool = True) -> PulledImage:
    """The index (or manifest) REF names, every platform manifest under it, and their configs, read
    through the read model (xarch.oci.model over xarch.registry.source.RegistrySource).

    GET /v2/<name>/manifests/<reference> (distribution spec "Pulling manifests"); InvalidReference (exit
    2), RegistryError/AuthError (exit 4), CorruptAnswer (exit 4) when an answer does not match its
    descriptor or is not an image (the message names the reference and the digest).
    """
    ref = parse_reference(target) if isinstance(target, str) else target
    client = make_client(ref, credentials, settings)
    try:
        top, media_type = open_published(ref, client)
        assert top.descriptor is not None
        data = top.data if isinstance(top, ImageIndex) else top.manifest_bytes
        image = PulledImage(ref, top.descriptor.digest, media_type, data or b"")
        try:
            entries: list[tuple[Descriptor | None, Image]]
            if isinstance(top, ImageIndex):
                entries = [(descriptor, top.image(descriptor)) for descriptor in top.manifests()]
            else:
                entries = [(None, top)]
            for descriptor, read in entries:
                assert read.descriptor is not None and read.manifest_bytes is not None
                pulled = PulledManifest(read.descriptor.digest,
                                        media_type_of(read.manifest, read.descriptor.media_type or None),
                                        read.manifest_bytes, read.manifest,
                                        descriptor.platform if descriptor else None)
                if with_configs or pulled.platform is None:
                    pulled.config_data = read.config_bytes()
                image.manifests.append(pulled)
        except (BadDescriptor, DocumentError, LayoutError) as error:  # a bad answer is the registry's fault
            raise CorruptAnswer(str(error)) from None
        return image
    finally:
        client.close()


def open_published(ref: Reference, client: RegistryClient) -> tuple[ImageIndex | Image, str]:
    """The index or manifest REF names, opened in the read model over the registry CLIENT talks to
    (xarch.registry.source.RegistrySource: what lies under it is fetched when asked for), and its media
    type (the document's own, else the registry's Content-Type). RegistryError/CorruptAnswer (exit 4)
    name the reference.
    """
    data, declared, digest = client.get_manifest(ref.repository, ref.target)
    media_type = media_type_of(answer_json(data, ref, digest), declared or None)
    try:
        source = RegistrySource(client, ref, {digest: data})
        top = open_descriptor(source, Descriptor(media_type, digest, len(data)))
    except (BadDescriptor, DocumentError, LayoutError) as error:
        raise CorruptAnswer(str(error)) from None
    return top, media_type


def answer_json(data: bytes, ref: Reference, digest: str) -> dict[str, Any]:
    """A manifest or index the registry answered, as a JSON object; CorruptAnswer (exit 4) if not."""
    try:
        return dict(json_object(data, f"{ref}: {digest}"))
    except BadDescriptor as error:
        raise CorruptAnswer(str(error)) from None


def answer_descriptor(obj: Any, where: str) -> tuple[str, str, int]:
    """(mediaType, digest, size in bytes) of the OCI descriptor OBJ a registry answered (OCI image
    spec, descriptor.md); a malformed one raises CorruptAnswer (exit 4) naming WHERE.
    """
    try:
        return descriptor_fields(obj, where)
    except BadDescriptor as error:
        raise CorruptAnswer(str(error)) from None


def pull_layout(target: str | Reference, destination: Path | str, credentials: Credentials | None = None,
                settings: Settings | None = None) -> PulledImage:
    """Write REF as an OCI layout at DESTINATION (whole or not at all), every blob verified."""
    ref = parse_reference(target) if isinstance(target, str) else target
    image = fetch_image(ref, credentials, settings)
    client = make_client(ref, credentials, settings)
    try:
        with atomic_dir(Path(destination)) as staging:
            blobs = staging / "blobs" / "sha256"
            blobs.mkdir(parents=True)
            (blobs / hex_of(image.digest)).write_bytes(image.data)
            for manifest in image.manifests:
                (blobs / hex_of(manifest.digest)).write_bytes(manifest.data)
                for descriptor in [manifest.json["config"], *manifest.json.get("layers", [])]:
                    path = blobs / hex_of(descriptor["digest"])
                    if not path.exists():
                        client.download_blob(ref.repository, descriptor["digest"], path, descriptor["size"])
            top_descriptor: dict[str, Any] = {"mediaType": image.media_type, "digest": image.digest,
                                              "size": len(image.data)}
            if ref.tag:
                top_descriptor["annotations"] = {REF_NAME: ref.tag}
            (staging / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
            (staging / "index.json").write_bytes(canonical_json(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top_descriptor]}))
    finally:
        client.close()
    return image
