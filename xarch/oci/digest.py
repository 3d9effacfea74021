"""Digests, descriptors and the canonical JSON every manifest, config and index uses."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Media types (OCI image spec v1.1).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Docker v2 schema 2 equivalents, for registries and engines that want them.
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    """`sha256:<64 hex>` of DATA: an OCI digest (image spec, descriptor.md "Digests")."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of the file at PATH, read CHUNK bytes at a time (memory stays flat).

    The one file hasher of xarch. Raises OSError as open() does.
    """
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            hasher.update(block)
    return hasher.hexdigest()


def hex_of(digest: str) -> str:
    """The 64 hex digits of DIGEST (`sha256:<hex>`), as blob file names use them; ValueError otherwise."""
    algorithm, _, hexpart = digest.partition(":")
    # The OCI image spec's sha256 encoding, [a-f0-9]{64}: the name can never step out of a folder.
    if algorithm != "sha256" or len(hexpart) != 64 or hexpart.strip("0123456789abcdef"):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the same bytes on every Python.

    The one canonical JSON of xarch: image configs, manifests, indexes, cache keys, lock inputs.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def platform_name(platform: dict[str, Any]) -> str:
    """"linux/amd64", "linux/arm/v7": how every table, report and comparison names a platform."""
    return "/".join(str(platform[key]) for key in ("os", "architecture", "variant") if platform.get(key))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (image spec, descriptor.md): mediaType, digest (`sha256:<hex>`),
    size in bytes, and the optional platform ({"os", "architecture", "variant"?}) and annotations.
    """

    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, media_type: str, data: bytes, **kwargs: Any) -> Descriptor:
        """The descriptor of DATA: its sha256 digest and length in bytes; KWARGS set platform or
        annotations.
        """
        return cls(media_type, sha256_digest(data), len(data), **kwargs)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as OCI JSON: mediaType, digest, size, and platform/annotations when set."""
        result: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            result["platform"] = dict(self.platform)
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        return result

    @classmethod
    def from_json(cls, obj: Any, where: str = "descriptor") -> Descriptor:
        """The descriptor OBJ (parsed JSON), its fields checked; BadDescriptor (exit 2) names WHERE."""
        from xarch.oci.verified import BadDescriptor, descriptor_fields

        media_type, digest, size = descriptor_fields(obj, where)
        platform, annotations = obj.get("platform"), obj.get("annotations") or {}
        if platform is not None and not isinstance(platform, dict):
            raise BadDescriptor(f"{where}: descriptor {digest} has a platform that is not a JSON object")
        if not isinstance(annotations, dict):
            raise BadDescriptor(f"{where}: descriptor {digest} has annotations that are not a JSON object")
        return cls(media_type=media_type, digest=digest, size=size, platform=platform,
                   annotations=dict(annotations))
