"""Push an OCI layout, or a build's Artifact from the store, to a registry: blobs, then each
platform manifest by digest, the index, the tag (push_source; push_layout for a layout).

The order matters: a registry accepts a manifest only once its blobs exist, and an index
only once its manifests do, so a push cut off midway never leaves a tag naming something
incomplete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from xarch.errors import XarchError
from xarch.oci.archive import ArchiveError
from xarch.oci.layout import LayoutError
from xarch.oci.verified import json_object
from xarch.registry.auth import Credentials, docker_config_credentials
from xarch.registry.client import RegistryClient, Settings
from xarch.registry.errors import RegistryError, RegistryUsageError
from xarch.registry.layout_source import LayoutImage, layout_folder
from xarch.registry.mediatypes import (
    UnsupportedInDocker,
    canonical_json,
    index_to_docker,
    manifest_to_docker,
    media_type_of,
    platform_name,
    sha256_digest,
)
from xarch.registry.progress import BlobProgress, QuietProgress, blob_label, show_skipped
from xarch.registry.push_source import PushSource
from xarch.registry.reference import Reference, check_repository, parse_reference
from xarch.registry.result import PushResult
from xarch.registry.uploads import UploadJournal
from xarch.units import human_size

if TYPE_CHECKING:
    from xarch.oci.filerange import FileRange

FORMATS = ("oci", "docker")
T = TypeVar("T")
R = TypeVar("R")


def make_client(ref: Reference, credentials: Credentials | None, settings: Settings | None,
                on_chunk: Callable[[str, int], None] | None = None) -> RegistryClient:
    """A client for REF's registry; credentials default to the Docker config's for that host."""
    if credentials is None and settings is not None and settings.credentials is not None \
            and settings.credentials_host == ref.host:
        credentials = settings.credentials
    creds = credentials if credentials is not None else docker_config_credentials(ref.host)
    return RegistryClient(ref.api_host, creds, settings, on_chunk=on_chunk, journal=UploadJournal())


def concurrently(client: RegistryClient, work: Callable[[T], R], items: Sequence[T],
                 prefix: str = "xarch-push") -> list[R]:
    """WORK(item) for every item, `settings.jobs` at a time; results in ITEMS' order. The first
    failure ends the lot: items not yet started are cancelled and the error is raised."""
    jobs = max(1, client.settings.jobs)
    if jobs == 1 or len(items) <= 1:
        return [work(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=prefix)
    try:
        futures = [pool.submit(work, item) for item in items]
        for future in as_completed(futures):
            future.result()  # the first failure, as soon as it happens
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def push_blobs(client: RegistryClient, repository: str, blobs: Sequence[dict[str, Any]],
               path_of: Callable[[str], Path | FileRange | bytes], progress: BlobProgress,
               mount_from: Sequence[str] = (),
               verify: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Make every blob in BLOBS present in REPOSITORY: skip, mount, or upload, in that order of preference.

    PATH_OF(digest) gives the file (or bytes) to upload. VERIFY(descriptor), when given, is called
    for every blob the registry lacks before the first one is sent, so a corrupt input ends the
    push having written nothing; a blob the registry has is neither read nor verified (see
    xarch.registry.push_source). HEADs, verification and uploads run `settings.jobs` at a time:
    on a re-push the HEADs are all the work, and one after another each costs a round trip.
    """
    stats = client.stats
    labels = {d["digest"]: blob_label(d["digest"], int(d["size"])) for d in blobs}
    present = concurrently(client, lambda d: client.blob_exists(repository, d["digest"]), blobs, "xarch-head")
    missing = []
    for descriptor, there in zip(blobs, present, strict=True):
        if there:
            show_skipped(stats, _sizes([descriptor]), progress)
        else:
            missing.append(descriptor)
    if verify is not None:
        concurrently(client, verify, missing, "xarch-verify")
    uploads: list[tuple[dict[str, Any], str | None, str]] = []
    for descriptor in missing:
        digest, size = descriptor["digest"], int(descriptor["size"])
        label = labels[digest]
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
        try:
            client.upload_blob(repository, digest, path_of(digest), size, _LabelledProgress(progress, label),
                               upload_url=upload_url)
        except RegistryError as error:
            if error.status == 400 and verify is not None:
                # Refused as malformed (DIGEST_INVALID): a file that changed since it was checked is
                # the input's fault (exit 2, naming it), not the registry's.
                verify(descriptor)
            raise
        progress.finish(label, f"sent {human_size(size)}")

    concurrently(client, upload, uploads, "xarch-upload")


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
    The layout is checked as it is read (LayoutError, BlobMismatch: exit 2); a blob is hashed
    only when it is sent (xarch.registry.push_source). See push_source for the rest.

    Distribution spec "Pushing blobs" and "Pushing manifests"; RegistryUsageError (exit 2) for a bad FMT
    or TARGET, RegistryError/AuthError/RegistryUnavailable (exit 4) for the registry.
    """
    from xarch.registry.layout_source import NotInPlace
    from xarch.registry.push_source import LayoutSource

    ref = push_target(target, fmt)
    if Path(layout).is_file():
        # An uncompressed oci-archive is read in place: each blob is sent from where it lies in the
        # tar, hashed only when sent, as a layout folder's are. Others are unpacked first.
        try:
            source = LayoutSource(Path(layout), ref.tag)
        except NotInPlace:
            pass
        except ArchiveError as error:  # push refuses a broken layout as a LayoutError, whatever is wrong
            raise LayoutError(str(error)) from None
        else:
            return push_source(source, ref, fmt, credentials, settings, mount_from, progress, on_chunk)
    with layout_folder(layout) as folder:
        # An oci-archive was read whole to unpack it: its blobs are hashed now, before any request.
        try:
            source = LayoutSource(folder, ref.tag, hash_all=folder != Path(layout))
        except XarchError as error:
            if folder != Path(layout):  # the scratch folder means nothing to the user: name the archive
                error.args = (str(error).replace(str(folder), str(layout)), *error.args[1:])
            raise
        source.label = str(layout)  # an oci-archive is named, not its scratch folder
        return push_source(source, ref, fmt, credentials, settings, mount_from, progress, on_chunk)


def push_target(target: str | Reference, fmt: str) -> Reference:
    """TARGET as a reference a push may write: a tag, no digest; FMT oci or docker.
    RegistryUsageError (exit 2) otherwise, before anything is read or sent."""
    if fmt not in FORMATS:
        raise RegistryUsageError(f"unknown push format {fmt!r} (choose oci or docker)")
    ref = parse_reference(target) if isinstance(target, str) else target
    if ref.digest:
        raise RegistryUsageError(
            f"push target {ref} names a digest; give a tag (digests follow from the bytes)")
    return ref


def push_source(source: PushSource, target: str | Reference, fmt: str = "oci",
                credentials: Credentials | None = None, settings: Settings | None = None,
                mount_from: Sequence[str] = (), progress: BlobProgress | None = None,
                on_chunk: Callable[[str, int], None] | None = None) -> PushResult:
    """Push SOURCE (a layout or a build's Artifact, xarch.registry.push_source) to TARGET.

    An unchanged re-push asks, and sends, as little as it can:

    1. HEAD the top (the index, or the one manifest) by digest. When the registry has it, it has
       everything under it (a registry accepts an index only once its manifests exist, and a
       manifest only once its blobs do): only the tag is checked, and PUT if it names something else.
    2. Otherwise HEAD each platform manifest by digest; an image the registry has is skipped whole.
    3. The blobs of the other images: HEAD, verify, mount or upload (push_blobs, `settings.jobs`
       at a time); then the missing manifests by digest, the index by digest, the tag.

    The tag is written last, so a push cut off midway never leaves it naming something incomplete.
    With fmt "oci", the source's attachments about what was pushed follow (as referrers).
    RegistryUsageError for a bad target or format; RegistryError/AuthError (exit 4) from the registry.
    """
    ref = push_target(target, fmt)
    for name in mount_from:  # it goes into a URL query and a token scope: a name, nothing else
        check_repository(name, "--mount-from")
    image = source.image
    tag = ref.tag or image.tag or "latest"
    try:
        manifests, index = _prepare(image, fmt)
    except UnsupportedInDocker as exc:
        raise RegistryUsageError(f"{source.label}: {exc}") from None
    top = index or manifests[0]
    progress = progress or QuietProgress()
    client = make_client(ref, credentials, settings, on_chunk)
    repository = ref.repository
    try:
        if client.manifest_digest(repository, top.digest) is not None:
            show_skipped(client.stats, _sizes(image.unique_blobs()), progress)
            if client.manifest_digest(repository, tag) != top.digest:
                client.put_manifest(repository, tag, top.data, top.media_type)
        else:
            asked = manifests if index is not None else []  # a lone manifest was the top, asked above
            there = concurrently(client, lambda m: client.manifest_digest(repository, m.digest) is not None,
                                 asked, "xarch-head")
            present = {m.digest for m, yes in zip(asked, there, strict=True) if yes}
            wanted: dict[str, dict[str, Any]] = {}
            for manifest, prepared in zip(image.manifests, manifests, strict=True):
                if prepared.digest not in present:
                    for descriptor in manifest.blob_descriptors():
                        wanted.setdefault(descriptor["digest"], descriptor)
            show_skipped(client.stats, _sizes(d for d in image.unique_blobs() if d["digest"] not in wanted),
                         progress)
            push_blobs(client, repository, list(wanted.values()), source.blob, progress, mount_from,
                       verify=source.verify)
            for prepared in manifests:
                if prepared.digest not in present:
                    client.put_manifest(repository, prepared.digest, prepared.data, prepared.media_type)
            if index is not None:
                client.put_manifest(repository, index.digest, index.data, index.media_type)
            client.put_manifest(repository, tag, top.data, top.media_type)
        referrers = {}
        if fmt == "oci":  # --format docker changes the manifests' digests: their attachments would dangle
            pushed = {m.digest for m in manifests} | {top.digest}
            referrers = _push_attachments(client, repository, source, pushed)
    finally:
        progress.close()
        client.close()
    return PushResult(
        reference=f"{ref.with_tag(tag)}@{top.digest}",
        digest=top.digest,
        media_type=top.media_type,
        manifests={platform_name(m.platform or _config_platform(source, i)): m.digest
                   for i, m in enumerate(manifests)},
        stats=client.stats,
        referrers=referrers,
        origin=client.base_url(),
        authenticated=client.auth.header is not None,
        blobs=_sizes(image.unique_blobs()),
    )


def _sizes(descriptors: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """(digest, size in bytes) of each of DESCRIPTORS."""
    return [(str(d["digest"]), int(d["size"])) for d in descriptors]


def _push_attachments(client: RegistryClient, repository: str, source: PushSource,
                      pushed: set[str]) -> dict[str, str]:
    """The source's attachments (SBOMs, provenance) whose subject was just pushed, as referrers:
    attachment digest -> "api" or "tag" (xarch.registry.referrers.push_attachment). One the
    registry already has and lists as a referrer of its subject is not sent again."""
    from xarch.registry.referrers import list_referrers, push_attachment

    listed: dict[str, dict[str, str]] = {}  # subject digest -> {referrer digest: "api" or "tag"}
    result = {}
    for attached in source.attachments():
        subject = attached.subject.digest
        if subject not in pushed:
            continue
        if client.manifest_digest(repository, attached.digest) is not None:
            if subject not in listed:
                found = list_referrers(client, repository, subject)
                listed[subject] = {str(d.get("digest")): found.via for d in found.descriptors}
            if attached.digest in listed[subject]:
                result[attached.digest] = listed[subject][attached.digest]
                continue
        result[attached.digest] = push_attachment(client, repository, attached)
    return result


def _config_platform(source: PushSource, position: int) -> dict[str, Any]:
    """A single-manifest layout has no platform in a descriptor: read it from the image config."""
    config = source.image.manifests[position].json["config"]
    where = f"{source.label}: config {config['digest']}"
    return dict(json_object(source.read(config), where))
