"""OCI artifacts that refer to an image: SBOMs, provenance, attestations, signatures.

An artifact is an OCI image manifest as image-spec v1.1 ("Guidelines for Artifact Usage")
describes it: `artifactType` names what it is, `config` is the empty descriptor
(`application/vnd.oci.empty.v1+json`, the two bytes `{}`), its one layer is the payload
(an SPDX document, an in-toto statement, ...), and `subject` is the descriptor of the manifest
it is about. It is attached, never embedded: the image index and manifests it refers to keep
their bytes and digests.

In an OCI layout the artifact manifests are listed in the top `index.json` beside the image
index, each with its `artifactType` and no `org.opencontainers.image.ref.name`, and their blobs
are in `blobs/` (as oras-go's OCI store keeps untagged manifests). The image index blob is not
touched, so its digest is the same with and without attachments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xarch.oci.digest import OCI_MANIFEST, Descriptor, canonical_json, sha256_digest

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor.of(EMPTY_MEDIA_TYPE, EMPTY_JSON)

# artifactType / payload media types xarch attaches.
SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
IN_TOTO = "application/vnd.in-toto+json"
# The predicate type of an in-toto statement, carried as an annotation so a consumer can tell
# provenance from a reproduction attestation without fetching the payload.
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Attachment:
    """One artifact manifest (exact bytes) and the blobs it names (config and payload).

    `descriptor` is what a referrers list or the layout's index.json holds: mediaType, digest,
    size, artifactType and the manifest's annotations (distribution-spec v1.1 §Listing Referrers).
    """

    manifest_bytes: bytes
    artifact_type: str
    subject: Descriptor
    blobs: dict[str, bytes] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest_bytes)

    @property
    def descriptor(self) -> dict[str, Any]:
        result: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": self.digest,
                                  "size": len(self.manifest_bytes), "artifactType": self.artifact_type}
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        return result

    @property
    def payload(self) -> bytes:
        """The payload (the one layer): an SBOM document, an in-toto statement."""
        layer = [digest for digest in self.blobs if digest != EMPTY_DESCRIPTOR.digest]
        return self.blobs[layer[0]] if layer else EMPTY_JSON


def attachment(artifact_type: str, payload: bytes, subject: Descriptor, payload_media_type: str | None = None,
               annotations: dict[str, str] | None = None) -> Attachment:
    """The artifact manifest of PAYLOAD (bytes) about SUBJECT (a manifest or index descriptor).

    ARTIFACT_TYPE is the manifest's `artifactType`; the layer's media type is PAYLOAD_MEDIA_TYPE
    (default: the same). ANNOTATIONS go on the manifest (and so into referrers lists). The bytes
    are canonical JSON: the same inputs give the same digest on every host.
    """
    layer = Descriptor.of(payload_media_type or artifact_type, payload)
    subject_json = {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size}
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_DESCRIPTOR.to_json(),
        "layers": [layer.to_json()],
        "subject": subject_json,
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    subject_only = Descriptor(subject.media_type, subject.digest, subject.size)
    return Attachment(canonical_json(manifest), artifact_type, subject_only,
                      {EMPTY_DESCRIPTOR.digest: EMPTY_JSON, layer.digest: payload}, dict(annotations or {}))


def subject_of(manifest: dict[str, Any]) -> str | None:
    """The digest a manifest's `subject` names, or None (not an attachment, or malformed)."""
    subject = manifest.get("subject")
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None
