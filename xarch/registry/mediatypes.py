"""Media types, canonical JSON, and the OCI -> Docker v2 schema2 rewrite for `--format docker`.

The rewrite changes manifest bytes, hence their digests: a docker-format push of a layout
publishes different manifest digests than the OCI layout holds. That is inherent (a digest
names bytes), and why OCI stays the default.
"""

from __future__ import annotations

from typing import Any

from xarch.errors import InputError

# One source of truth for media types and the canonical JSON encoding: the OCI core's.
from xarch.oci.digest import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    canonical_json,
    platform_name,
    sha256_digest,
)
from xarch.oci.digest import DOCKER_MANIFEST_LIST as DOCKER_LIST

__all__ = ["canonical_json", "platform_name", "sha256_digest", "OCI_INDEX", "OCI_MANIFEST", "DOCKER_MANIFEST",
           "DOCKER_LIST"]

IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

_LAYER_TO_DOCKER = {
    "application/vnd.oci.image.layer.v1.tar+gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip":
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


class UnsupportedInDocker(InputError, ValueError):
    """A layer or manifest that Docker schema2 cannot express (e.g. zstd layers)."""


def media_type_of(manifest: dict[str, Any], fallback: str | None = None) -> str:
    """The manifest's own mediaType, else what its shape says (OCI makes the field optional)."""
    declared = manifest.get("mediaType") or fallback
    if declared:
        return str(declared)
    return OCI_INDEX if "manifests" in manifest else OCI_MANIFEST


def manifest_to_docker(manifest: dict[str, Any]) -> dict[str, Any]:
    """An OCI image manifest rewritten as Docker v2 schema2 (annotations dropped: schema2 has none).

    UnsupportedInDocker (exit 2) for a layer media type schema2 cannot express (zstd).
    """
    converted: dict[str, Any] = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}
    config = dict(manifest["config"])
    config["mediaType"] = DOCKER_CONFIG
    config.pop("annotations", None)
    converted["config"] = config
    layers = []
    for layer in manifest.get("layers") or []:
        media_type = layer.get("mediaType")  # required by the OCI spec, but absent is not a traceback
        if media_type not in _LAYER_TO_DOCKER:
            raise UnsupportedInDocker(f"layer {layer['digest']} has media type {media_type or '(none)'}, "
                                      "which Docker schema2 cannot express (use --format oci)")
        converted_layer = {k: v for k, v in layer.items() if k in ("digest", "size", "urls")}
        converted_layer["mediaType"] = _LAYER_TO_DOCKER[media_type]
        layers.append(converted_layer)
    converted["layers"] = layers
    return converted


def index_to_docker(index: dict[str, Any], new_descriptors: list[dict[str, Any]]) -> dict[str, Any]:
    """A Docker manifest list whose entries are NEW_DESCRIPTORS (already pointing at converted manifests)."""
    del index  # the list keeps only schemaVersion, mediaType and manifests; index annotations have no place
    return {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": new_descriptors}


