"""Attach artifacts to a manifest in a registry, and list what is attached (OCI distribution-spec v1.1).

The API, for SBOMs, provenance, reproduction attestations and signatures alike:

- `push_attachment(client, repository, attachment)` uploads the artifact's blobs, PUTs its
  manifest by digest and makes it listable as a referrer of its subject; returns `"api"` when the
  registry indexes referrers itself (it answered the PUT with an `OCI-Subject` header), `"tag"`
  when xarch maintained the referrers tag schema instead.
- `list_referrers(client, repository, digest, artifact_type=None)` returns the descriptors of the
  manifests that refer to DIGEST: from `GET /v2/<name>/referrers/<digest>` where the registry
  has that endpoint, else from the referrers tag.
- `fetch_attachment(client, repository, descriptor)` returns one referrer's parsed manifest and
  payload, both verified against their digests.

The referrers tag schema (distribution-spec v1.1, "Referrers Tag Schema"), for registries without
the API such as docker-registry 2.8: the tag `sha256-<hex of the subject digest>` names an OCI
image index whose `manifests` are the referrers' descriptors (mediaType, digest, size,
artifactType, annotations). Adding one is read-modify-write: the current index is read, the
descriptor appended unless already listed, and the index PUT back. Two clients adding at the
same moment can lose one entry (the spec offers no lock); the artifact itself is still pushed
and can be listed again by pushing it once more.

Errors: RegistryError (exit 4) naming the registry, repository and request; CorruptAnswer when a
manifest or blob does not match its digest, or a referrers answer is not an index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from xarch.oci.artifact import Attachment
from xarch.oci.digest import OCI_INDEX, OCI_MANIFEST, Descriptor, canonical_json, hex_of
from xarch.oci.layout import LayoutError, LayoutReader
from xarch.oci.verified import BadDescriptor, BlobMismatch, descriptor_fields, json_object
from xarch.registry.client import MAX_MANIFEST_BYTES, RegistryClient, bounded_body
from xarch.registry.errors import CorruptAnswer, RegistryError

__all__ = ["Attachment", "Referrers", "fetch_attachment", "layout_attachments", "list_referrers",
           "push_attachment", "push_attachments", "referrers_tag"]


def referrers_tag(digest: str) -> str:
    """The fallback tag of DIGEST's referrers: `sha256-<hex>` (algorithm, dash, hex)."""
    return f"sha256-{hex_of(digest)}"


@dataclass(frozen=True)
class Referrers:
    """What refers to one digest: descriptors (dicts, as the registry listed them) and how they were
    found ("api" or "tag")."""

    descriptors: list[dict[str, Any]]
    via: str


def _upload(client: RegistryClient, repository: str, blobs: dict[str, bytes]) -> None:
    for digest, data in sorted(blobs.items()):
        if not client.blob_exists(repository, digest):
            client.upload_blob(repository, digest, data, len(data))  # small: sent from memory


def _put(client: RegistryClient, repository: str, reference: str, data: bytes,
         media_type: str) -> dict[str, str]:
    """PUT manifest DATA under REFERENCE; the answer's headers."""
    client.auth.add_scope(f"repository:{repository}:pull,push")
    what = f"PUT manifest {repository}:{reference}"
    response = client.request("PUT", f"/v2/{repository}/manifests/{reference}",
                              headers={"Content-Type": media_type}, body=data, what=what)
    if response.status_code not in (200, 201):
        raise RegistryError(f"{client.host}: {what}: HTTP {response.status_code} {response.reason}")
    return dict(response.headers)


def push_attachment(client: RegistryClient, repository: str, attachment: Attachment) -> str:
    """Push ATTACHMENT (its blobs, then its manifest by digest) into REPOSITORY, where its subject
    must already be. Returns "api" when the registry lists referrers itself, else "tag" after adding
    the descriptor to the referrers tag (see the module docstring)."""
    _upload(client, repository, attachment.blobs)
    headers = _put(client, repository, attachment.digest, attachment.manifest_bytes, OCI_MANIFEST)
    # distribution-spec v1.1: a registry that processes `subject` says so with OCI-Subject.
    if any(key.lower() == "oci-subject" for key in headers):
        return "api"
    _add_to_tag(client, repository, attachment.subject.digest, attachment.descriptor)
    return "tag"


def _get(client: RegistryClient, path: str, accept: str, what: str) -> tuple[int, bytes, dict[str, str]]:
    response = client.request("GET", path, headers={"Accept": accept}, stream=True, what=what)
    try:  # an index of referrers is a manifest: the registry's own 4 MiB bound holds
        body = bounded_body(response, MAX_MANIFEST_BYTES, f"{client.host}: {what}: the answer is larger than "
                            f"{MAX_MANIFEST_BYTES} bytes")
    finally:
        response.close()
    return response.status_code, body, dict(response.headers)


def _index_manifests(data: bytes, where: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise CorruptAnswer(f"{where}: not JSON") from None
    manifests = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(manifests, list):
        raise CorruptAnswer(f"{where}: not an image index of descriptors")
    for entry in manifests:
        # The digest becomes part of a URL: only sha256:<64 hex> (BadDescriptor → CorruptAnswer, exit 4).
        try:
            descriptor_fields(entry, where)
        except BadDescriptor as error:
            raise CorruptAnswer(str(error)) from None
    return manifests


def _tag_index(client: RegistryClient, repository: str, digest: str) -> list[dict[str, Any]]:
    """The descriptors the referrers tag of DIGEST lists ([] when there is no such tag)."""
    client.auth.add_scope(f"repository:{repository}:pull")
    tag = referrers_tag(digest)
    what = f"GET manifest {repository}:{tag}"
    status, data, _ = _get(client, f"/v2/{repository}/manifests/{tag}", OCI_INDEX, what)
    if status == 404:
        return []
    if status != 200:
        raise RegistryError(f"{client.host}: {what}: HTTP {status}")
    return _index_manifests(data, f"{client.host}: {what}")


def _add_to_tag(client: RegistryClient, repository: str, subject: str, descriptor: dict[str, Any]) -> None:
    manifests = _tag_index(client, repository, subject)
    if any(m.get("digest") == descriptor["digest"] for m in manifests):
        return
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*manifests, descriptor]}
    _put(client, repository, referrers_tag(subject), canonical_json(index), OCI_INDEX)


def list_referrers(client: RegistryClient, repository: str, digest: str,
                   artifact_type: str | None = None) -> Referrers:
    """The referrers of DIGEST in REPOSITORY, optionally only those of ARTIFACT_TYPE.

    Asks the referrers API first; a 404 there means the registry has no such endpoint
    (distribution-spec v1.1), and the referrers tag is read instead.

    RegistryError (exit 4) for any other answer.
    """
    hex_of(digest)  # a malformed digest is the caller's bug, not a URL to send
    client.auth.add_scope(f"repository:{repository}:pull")
    path = f"/v2/{repository}/referrers/{digest}"
    if artifact_type:
        path += f"?artifactType={quote(artifact_type, safe='')}"  # "+json": + is a space in a query
    what = f"GET referrers {repository}@{digest}"
    status, data, headers = _get(client, path, OCI_INDEX, what)
    if status == 200:
        found, via = _index_manifests(data, f"{client.host}: {what}"), "api"
        filtered = any(k.lower() == "oci-filters-applied" for k in headers)
        if artifact_type and not filtered:
            found = [m for m in found if m.get("artifactType") == artifact_type]
        return Referrers(found, via)
    if status != 404:
        raise RegistryError(f"{client.host}: {what}: HTTP {status}")
    found = [_complete(client, repository, d) for d in _tag_index(client, repository, digest)]
    if artifact_type:
        found = [m for m in found if m.get("artifactType") == artifact_type]
    return Referrers(found, "tag")


def _complete(client: RegistryClient, repository: str, descriptor: dict[str, Any]) -> dict[str, Any]:
    """DESCRIPTOR with the `artifactType` (and annotations) its manifest states when the tag's index
    lost them: tools that predate image-spec v1.1 re-encode the index without the field when they
    copy it (skopeo 1.9 does)."""
    if descriptor.get("artifactType"):
        return descriptor
    data, _, _ = client.get_manifest(repository, str(descriptor["digest"]))
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        return descriptor
    if not isinstance(manifest, dict):
        return descriptor
    config = manifest.get("config")
    kind = manifest.get("artifactType") or (config.get("mediaType") if isinstance(config, dict) else None)
    completed = dict(descriptor)
    if isinstance(kind, str):
        completed["artifactType"] = kind
    if isinstance(manifest.get("annotations"), dict) and "annotations" not in completed:
        completed["annotations"] = manifest["annotations"]
    return completed


def fetch_attachment(client: RegistryClient, repository: str, descriptor: dict[str, Any]) -> tuple[
        dict[str, Any], bytes]:
    """(manifest JSON, payload bytes) of the referrer DESCRIPTOR, both checked against their digests.
    The payload is the manifest's first layer; CorruptAnswer when the manifest has none."""
    data, _, _ = client.get_manifest(repository, str(descriptor["digest"]))
    where = f"{client.host}: {repository}@{descriptor['digest']}"
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        raise CorruptAnswer(f"{where}: manifest is not JSON") from None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers, list) or not layers:
        raise CorruptAnswer(f"{where}: an attachment manifest without a payload layer")
    try:
        _, digest, size = descriptor_fields(layers[0], where)
    except BadDescriptor as error:
        raise CorruptAnswer(str(error)) from None
    return manifest, client.get_blob(repository, digest, size)


def push_attachments(client: RegistryClient, repository: str, attachments: Sequence[Attachment]) -> list[str]:
    """push_attachment for each, in order; how each was made listable."""
    return [push_attachment(client, repository, item) for item in attachments]


def layout_attachments(root: Path) -> list[Attachment]:
    """The attachments an OCI layout folder or oci-archive lists in its index.json (entries with an
    `artifactType` whose manifest has a `subject`), in that order, every blob read and verified by the
    layout reader (xarch.oci.layout.LayoutReader; LayoutError, exit 2, naming the layout)."""
    reader = LayoutReader(root)
    try:
        return _attachments(reader)
    except BlobMismatch as error:  # a broken layout fails as a LayoutError, as in push_source
        raise LayoutError(str(error)) from None
    finally:
        reader.close()


def _attachments(reader: LayoutReader) -> list[Attachment]:
    root = reader.label
    entries = reader.top_index().get("manifests") or []
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("artifactType"):
            continue
        _, digest, size = descriptor_fields(entry, f"{root}: index.json")
        data = reader.blob(digest, size)
        where = f"{root}: {digest}"
        manifest = json_object(data, where)
        subject = manifest.get("subject")
        if not isinstance(subject, dict):
            continue  # an artifact about nothing: not an attachment
        media_type, subject_digest, subject_size = descriptor_fields(subject, f"{where}: subject")
        blobs = {}
        layers = manifest.get("layers") if isinstance(manifest.get("layers"), list) else []
        for blob in [manifest.get("config"), *layers]:
            _, blob_digest, blob_size = descriptor_fields(blob, where)
            blobs[blob_digest] = reader.blob(blob_digest, blob_size)
        annotations = manifest.get("annotations") if isinstance(manifest.get("annotations"), dict) else {}
        about = Descriptor(media_type, subject_digest, subject_size)
        found.append(Attachment(data, str(entry["artifactType"]), about, blobs, dict(annotations)))
    return found
