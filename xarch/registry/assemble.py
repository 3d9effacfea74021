"""`xarch assemble`: stitch per-architecture manifests already in a registry into one index.

A CI matrix of native runners pushes one image each (by digest); assemble reads each
manifest and its config (for os/architecture/variant), builds the index with the same
function a local multi-arch build uses (`xarch.oci.index.build_index`), so the bytes are
equal, mounts any missing blobs into the target repository, and pushes manifests, then the
index, then the tag.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xarch.oci.digest import Descriptor
from xarch.oci.index import build_index
from xarch.registry.auth import Credentials
from xarch.registry.client import RegistryClient, Settings
from xarch.registry.errors import RegistryError, RegistryUsageError
from xarch.registry.mediatypes import IMAGE_MANIFESTS, OCI_INDEX, media_type_of, platform_name
from xarch.registry.progress import BlobProgress, QuietProgress
from xarch.registry.pull import answer_descriptor, answer_json
from xarch.registry.push import make_client, push_blobs
from xarch.registry.reference import Reference, parse_reference
from xarch.registry.result import PushResult


@dataclass
class SourceManifest:
    """One platform's manifest pulled for `assemble`: where it came from, its exact bytes, media type,
    parsed JSON and the OCI platform ({"os", "architecture", "variant"?}) it goes under in the index.
    """

    reference: Reference
    data: bytes
    media_type: str
    json: dict[str, Any]
    platform: dict[str, str]

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor.of(self.media_type, self.data, platform=self.platform)


def platform_of_config(config: dict[str, Any]) -> dict[str, str]:
    """The index descriptor's platform, from the image config: what a local build writes too.

    Returns {"architecture", "os", "variant"?}; RegistryError (exit 4) when the config lacks os or
    architecture.
    """
    platform = {"architecture": str(config.get("architecture", "")), "os": str(config.get("os", ""))}
    if config.get("variant"):
        platform["variant"] = str(config["variant"])
    if not platform["architecture"] or not platform["os"]:
        raise RegistryError("image config has no os/architecture")
    return platform


def fetch_source(client: RegistryClient, ref: Reference) -> SourceManifest:
    """The image manifest REF@sha256:… and its platform (from its config).

    RegistryUsageError (exit 2) when REF names an index, not one image manifest; RegistryError (exit 4)
    otherwise.
    """
    assert ref.digest
    data, declared, _ = client.get_manifest(ref.repository, ref.digest)
    manifest = answer_json(data, ref, ref.digest)
    media_type = media_type_of(manifest, declared or None)
    if media_type not in IMAGE_MANIFESTS:
        raise RegistryUsageError(f"--from {ref}: is {media_type}, not an image manifest "
                            "(give the digest of one platform's manifest)")
    _, config_digest, config_size = answer_descriptor(manifest.get("config"), f"--from {ref}")
    config = answer_json(client.get_blob(ref.repository, config_digest, config_size), ref, config_digest)
    try:
        platform = platform_of_config(config)
    except RegistryError as exc:
        raise RegistryError(f"--from {ref}: {exc}") from None
    return SourceManifest(ref, data, media_type, manifest, platform)


def assemble(
    target: str | Reference,
    from_refs: Sequence[str | Reference],
    credentials: Credentials | None = None,
    settings: Settings | None = None,
    annotations: dict[str, str] | None = None,
    progress: BlobProgress | None = None,
) -> PushResult:
    """Build an OCI index of FROM_REFS (each `host/repo@sha256:…`, in this order) and push it to TARGET.

    RegistryUsageError (exit 2) for a TARGET with a digest, no FROM_REFS, one without a digest or on
    another registry, or two of one platform; registry failures exit 4.
    """
    ref = parse_reference(target) if isinstance(target, str) else target
    if ref.digest:
        raise RegistryUsageError(f"assemble target {ref} names a digest; give a tag")
    sources = [parse_reference(r) if isinstance(r, str) else r for r in from_refs]
    if not sources:
        raise RegistryUsageError("assemble needs at least one --from REF@sha256:…")
    for source in sources:
        if not source.digest:
            raise RegistryUsageError(f"--from {source}: give a digest (REF@sha256:…); a tag can move")
        if source.host != ref.host:
            raise RegistryUsageError(f"--from {source}: is on {source.host}, the target on {ref.host}; "
                                "assemble mounts blobs within one registry")
    progress = progress or QuietProgress()
    client = make_client(ref, credentials, settings)
    try:
        manifests = [fetch_source(client, source) for source in sources]
        seen: dict[str, Reference] = {}
        for manifest in manifests:
            name = platform_name(manifest.platform)
            if name in seen:
                raise RegistryUsageError(
                    f"--from {manifest.reference} and --from {seen[name]} are both {name}")
            seen[name] = manifest.reference
        index = build_index([m.descriptor for m in manifests], annotations)
        with tempfile.TemporaryDirectory(prefix="xarch-assemble-") as scratch:
            for manifest in manifests:
                source_repo = manifest.reference.repository
                blobs = [manifest.json["config"], *manifest.json.get("layers", [])]

                def fetch(digest: str, repo: str = source_repo) -> Path:
                    # Only when the registry refused to mount: copy the blob through this machine.
                    path = Path(scratch) / digest.replace(":", "-")
                    client.download_blob(repo, digest, path)
                    return path

                push_blobs(client, ref.repository, blobs, fetch, progress, mount_from=[source_repo])
                client.put_manifest(ref.repository, manifest.descriptor.digest, manifest.data,
                                    manifest.media_type)
        digest = client.put_manifest(ref.repository, Descriptor.of(OCI_INDEX, index).digest, index, OCI_INDEX)
        tag = ref.tag or "latest"
        client.put_manifest(ref.repository, tag, index, OCI_INDEX)
    finally:
        progress.close()
        client.close()
    return PushResult(
        reference=f"{ref.with_tag(tag)}@{digest}", digest=digest, media_type=OCI_INDEX,
        manifests={platform_name(m.platform): m.descriptor.digest for m in manifests}, stats=client.stats,
    )
