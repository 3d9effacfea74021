"""Push an OCI layout to a registry: blobs, then each platform manifest by digest, the index, the tag.

The order matters: a registry accepts a manifest only once its blobs exist, and an index
only once its manifests do, so a push cut off midway never leaves a tag naming something
incomplete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.oci.verified import json_object
from xarch.registry.auth import Credentials, docker_config_credentials
from xarch.registry.client import RegistryClient, Settings, TransferStats
from xarch.registry.errors import RegistryUsageError
from xarch.registry.layout_source import LayoutImage, layout_folder, read_layout
from xarch.registry.mediatypes import (
    UnsupportedInDocker,
    canonical_json,
    index_to_docker,
    manifest_to_docker,
    media_type_of,
    platform_name,
    sha256_digest,
)
from xarch.registry.progress import BlobProgress, QuietProgress
from xarch.registry.reference import Reference, check_repository, parse_reference
from xarch.registry.uploads import UploadJournal
from xarch.units import human_size

FORMATS = ("oci", "docker")


@dataclass
class PushResult:
    """What a push left on the registry: the reference with the pushed digest, the top media type,
    {platform name: manifest digest}, the transfer counters and {attachment digest: "api" | "tag"}.
    """

    reference: str  # host/repo:tag@digest of what the tag now names
    digest: str
    media_type: str
    manifests: dict[str, str] = field(default_factory=dict)  # platform name -> manifest digest
    stats: TransferStats = field(default_factory=TransferStats)
    referrers: dict[str, str] = field(default_factory=dict)  # attachment digest -> "api" or "tag"

    def as_dict(self) -> dict[str, Any]:
        """The result as `push --json` prints it: the fields above, the counters flattened in."""
        return {"reference": self.reference, "digest": self.digest, "mediaType": self.media_type,
                "manifests": self.manifests, "referrers": self.referrers, **self.stats.as_dict()}


def short(digest: str) -> str:
    """The first 12 hex digits of DIGEST (`sha256:<hex>`), as progress lines show blobs."""
    return digest.split(":", 1)[-1][:12]


def make_client(ref: Reference, credentials: Credentials | None, settings: Settings | None,
                on_chunk: Callable[[str, int], None] | None = None) -> RegistryClient:
    """A client for REF's registry; credentials default to the Docker config's for that host."""
    if credentials is None and settings is not None and settings.credentials is not None \
            and settings.credentials_host == ref.host:
        credentials = settings.credentials
    creds = credentials if credentials is not None else docker_config_credentials(ref.host)
    return RegistryClient(ref.api_host, creds, settings, on_chunk=on_chunk, journal=UploadJournal())


def push_blobs(client: RegistryClient, repository: str, blobs: Sequence[dict[str, Any]],
               path_of: Callable[[str], Path], progress: BlobProgress,
               mount_from: Sequence[str] = ()) -> None:
    """Make every blob in BLOBS present in REPOSITORY: skip, mount, or upload, in that order of preference.

    The cheap questions (HEAD, mount) go one by one; uploads run `settings.jobs` at a time.
    """
    stats = client.stats
    uploads: list[tuple[dict[str, Any], str | None, str]] = []
    for descriptor in blobs:
        digest, size = descriptor["digest"], int(descriptor["size"])
        label = f"{short(digest)} ({human_size(size)})"
        if client.blob_exists(repository, digest):
            stats.add(blobs_skipped=1, bytes_skipped=size)
            progress.finish(label, "already there, skipped")
            continue
        upload_url = None
        mounted_from = None
        for source in mount_from:
            if source == repository:
                continue
            if upload_url:
                client.cancel_upload(upload_url)  # the previous source declined; its session is not needed
            mounted, upload_url = client.mount_blob(repository, digest, source)
            if mounted:
                mounted_from = source
                break
            # Declined (blob absent there, or no access): upload into the session the registry
            # opened, if it opened one, instead of leaving it dangling.
        if mounted_from:
            stats.add(blobs_mounted=1, bytes_mounted=size)
            progress.finish(label, f"mounted from {mounted_from}")
            continue
        uploads.append((descriptor, upload_url, label))

    def upload(item: tuple[dict[str, Any], str | None, str]) -> None:
        descriptor, upload_url, label = item
        digest, size = descriptor["digest"], int(descriptor["size"])
        progress.start(label, size)
        client.upload_blob(repository, digest, path_of(digest), size, _LabelledProgress(progress, label),
                           upload_url=upload_url)
        progress.finish(label, f"sent {human_size(size)}")

    jobs = max(1, client.settings.jobs)
    if jobs == 1 or len(uploads) <= 1:
        for item in uploads:
            upload(item)
        return
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="xarch-upload")
    try:
        for future in as_completed([pool.submit(upload, item) for item in uploads]):
            future.result()  # the first failure ends the push; blobs not yet started are cancelled
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _LabelledProgress:
    """Maps the client's per-digest progress calls onto the display's label for that blob."""

    def __init__(self, inner: BlobProgress, label: str):
        self.inner, self.label = inner, label

    def start(self, label: str, total: int) -> None:
        self.inner.start(self.label, total)

    def advance(self, label: str, amount: int) -> None:
        self.inner.advance(self.label, amount)

    def finish(self, label: str, note: str) -> None:
        self.inner.finish(self.label, note)

    def close(self) -> None:
        pass


@dataclass
class _PreparedManifest:
    data: bytes
    media_type: str
    digest: str
    platform: dict[str, Any] | None


def _prepare(image: LayoutImage, fmt: str) -> tuple[list[_PreparedManifest], _PreparedManifest | None]:
    """Platform manifests and the index as the bytes to send (rewritten for --format docker)."""
    manifests: list[_PreparedManifest] = []
    descriptors = []
    for manifest in image.manifests:
        platform = manifest.descriptor.get("platform")
        if fmt == "docker":
            converted = manifest_to_docker(manifest.json)
            data, media_type = canonical_json(converted), converted["mediaType"]
        else:
            data, media_type = manifest.data, manifest.media_type
        prepared = _PreparedManifest(data, media_type, sha256_digest(data), platform)
        manifests.append(prepared)
        descriptor = {k: v for k, v in manifest.descriptor.items() if fmt == "oci" or k == "platform"}
        descriptor.update(mediaType=media_type, digest=prepared.digest, size=len(data))
        descriptors.append(descriptor)
    if not image.is_index:
        return manifests, None
    if fmt == "docker":
        index_json = index_to_docker(image.top_json, descriptors)
        data, media_type = canonical_json(index_json), index_json["mediaType"]
    else:
        data = image.top_data
        media_type = media_type_of(image.top_json, image.top_descriptor.get("mediaType"))
    return manifests, _PreparedManifest(data, media_type, sha256_digest(data), None)


def push_layout(
    layout: Path | str,
    target: str | Reference,
    fmt: str = "oci",
    credentials: Credentials | None = None,
    settings: Settings | None = None,
    mount_from: Sequence[str] = (),
    progress: BlobProgress | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
) -> PushResult:
    """Push the OCI layout (folder or oci-archive) LAYOUT to TARGET (`host/repo[:tag]`).

    The tag defaults to the layout's (org.opencontainers.image.ref.name), else "latest".

    MOUNT_FROM names repositories on the same registry to mount blobs from before uploading.

    Distribution spec "Pushing blobs" and "Pushing manifests"; RegistryUsageError (exit 2) for a bad FMT
    or TARGET, LayoutError/BlobMismatch (exit 2) for a damaged layout, RegistryError/AuthError/
    RegistryUnavailable (exit 4) for the registry.
    """
    if fmt not in FORMATS:
        raise RegistryUsageError(f"unknown push format {fmt!r} (choose oci or docker)")
    ref = parse_reference(target) if isinstance(target, str) else target
    if ref.digest:
        raise RegistryUsageError(
            f"push target {ref} names a digest; give a tag (digests follow from the bytes)")
    for source in mount_from:  # it goes into a URL query and a token scope: a name, nothing else
        check_repository(source, "--mount-from")
    with layout_folder(layout) as folder:
        return _push_folder(folder, layout, ref, fmt, credentials, settings, mount_from, progress, on_chunk)


def _push_folder(folder: Path, layout: Path | str, ref: Reference, fmt: str, credentials: Credentials | None,
                 settings: Settings | None, mount_from: Sequence[str], progress: BlobProgress | None,
                 on_chunk: Callable[[str, int], None] | None) -> PushResult:
    image = read_layout(folder, ref.tag)
    tag = ref.tag or image.tag or "latest"
    try:
        manifests, index = _prepare(image, fmt)
    except UnsupportedInDocker as exc:
        raise RegistryUsageError(f"{layout}: {exc}") from None
    progress = progress or QuietProgress()
    client = make_client(ref, credentials, settings, on_chunk)
    try:
        push_blobs(client, ref.repository, image.unique_blobs(), lambda d: image.blob_path(d), progress,
                   mount_from)
        for prepared in manifests:
            client.put_manifest(ref.repository, prepared.digest, prepared.data, prepared.media_type)
        top = index or manifests[0]
        if index is not None:
            client.put_manifest(ref.repository, index.digest, index.data, index.media_type)
        client.put_manifest(ref.repository, tag, top.data, top.media_type)
        referrers = {}
        if fmt == "oci":  # --format docker changes the manifests' digests: their attachments would dangle
            pushed = {m.digest for m in manifests} | {top.digest}
            referrers = _push_attachments(client, ref.repository, folder, pushed)
    finally:
        progress.close()
        client.close()
    return PushResult(
        reference=f"{ref.with_tag(tag)}@{top.digest}",
        digest=top.digest,
        media_type=top.media_type,
        manifests={platform_name(m.platform or _config_platform(image, i)): m.digest
                   for i, m in enumerate(manifests)},
        stats=client.stats,
        referrers=referrers,
    )


def _push_attachments(client: RegistryClient, repository: str, folder: Path,
                      pushed: set[str]) -> dict[str, str]:
    """The layout's attachments (SBOMs, provenance) whose subject was just pushed, as referrers:
    attachment digest -> "api" or "tag" (xarch.registry.referrers.push_attachment)."""
    from xarch.registry.referrers import layout_attachments, push_attachment

    return {attached.digest: push_attachment(client, repository, attached)
            for attached in layout_attachments(folder) if attached.subject.digest in pushed}


def _config_platform(image: LayoutImage, position: int) -> dict[str, Any]:
    """A single-manifest layout has no platform in a descriptor: read it from the image config."""
    config = image.manifests[position].json["config"]
    where = f"{image.root}: config {config['digest']}"
    return dict(json_object(image.blob_path(config["digest"]).read_bytes(), where))
