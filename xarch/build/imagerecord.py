"""One platform's finished image as a small JSON record naming its blobs in the store.

Shared by the image cache (xarch.build.imagecache) and build records (xarch.records), so
both write and read images the one same way. Light on purpose: a build record is read before the
recipe's schema (pydantic) loads.
"""

from __future__ import annotations

from typing import Any

from xarch.oci.digest import OCI_LAYER_GZIP, hex_of, sha256_digest
from xarch.oci.image import Image
from xarch.oci.layer import Layer
from xarch.oci.store import Store
from xarch.records import RecordError  # one error for image and build records


def image_record(image: Image) -> dict[str, Any]:
    """The record of IMAGE: {platform, config, manifest, layers: [{name, digest, diff_id,
    media_type, uncompressed_size, entry_count}]}; digests are `sha256:<hex>`."""
    return {
        "platform": image.platform,
        "config": image.config_descriptor.digest,
        "manifest": sha256_digest(image.manifest_bytes),
        "layers": [
            {"name": layer.name, "digest": layer.descriptor.digest, "diff_id": layer.diff_id,
             "media_type": layer.media_type,
             "uncompressed_size": layer.uncompressed_size, "entry_count": layer.entry_count}
            for layer in image.layers
        ],
    }


def store_image(store: Store, image: Image) -> None:
    """Put every blob of IMAGE into STORE (a layer the layer writer already put there is kept)."""
    for data in (image.config_bytes, image.manifest_bytes):
        if not store.verified(sha256_digest(data).partition(":")[2]):
            store.put_bytes(data)
    for layer in image.layers:
        if layer.path is not None and layer.path == store.path(hex_of(layer.digest)):
            continue  # written into this store by write_layer
        with layer.open() as stream:
            store.put_stream(stream, hex_of(layer.digest), f"layer {layer.name}")


def images_from_records(store: Store, records: list[Any]) -> tuple[Image, ...]:
    """image_from_record of each of RECORDS, their layers checked against their digests on two
    threads at once first (sha256 releases the GIL: a replayed build's largest cost after start-up).
    Raises RecordError as image_from_record does."""
    import threading

    try:
        digests = {hex_of(item["digest"]) for record in records for item in record["layers"]}
    except (ValueError, KeyError, TypeError) as error:
        raise RecordError(f"not an image record: {error}") from None
    halves: tuple[list[str], list[str]] = ([], [])
    sizes = [0, 0]
    for size, digest in sorted(((_size(store, digest), digest) for digest in digests), reverse=True):
        lighter = sizes.index(min(sizes))  # the largest first, each to the half with fewer bytes
        halves[lighter].append(digest)
        sizes[lighter] += size
    good: set[str] = set()

    def check(part: list[str]) -> None:
        good.update(digest for digest in part if store.verified(digest))  # one update: atomic under the GIL

    # A failure on the helper thread leaves its blobs unchecked: image_from_record checks them again.
    helper = threading.Thread(target=check, args=(halves[1],))
    helper.start()
    check(halves[0])
    helper.join()
    checked = frozenset(f"sha256:{digest}" for digest in good)
    return tuple(image_from_record(store, record, checked) for record in records)


def _size(store: Store, digest: str) -> int:
    try:
        return store.path(digest).stat().st_size
    except OSError:
        return 0


def image_from_record(store: Store, record: Any, checked: frozenset[str] = frozenset()) -> Image:
    """The image RECORD names, its layers as files of STORE. Every blob is checked against its
    digest first (a layer streamed through sha256, never read into memory; a corrupt blob is
    deleted from the store), but for the layers in CHECKED (digests the caller just checked).
    Raises RecordError for a malformed record or a missing or corrupt blob."""
    try:
        layers = []
        for item in record["layers"]:
            if item["digest"] not in checked and not store.verified(hex_of(item["digest"])):
                raise RecordError(f"blob {item['digest']} is missing or corrupt")
            layers.append(Layer(item["name"], item["diff_id"], None, item["uncompressed_size"],
                                item["entry_count"], path=store.path(hex_of(item["digest"])),
                                digest=item["digest"], media_type=item.get("media_type", OCI_LAYER_GZIP)))
        config = read_blob(store, record["config"])
        manifest = read_blob(store, record["manifest"])
        return Image(dict(record["platform"]), config, manifest, tuple(layers))
    except RecordError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise RecordError(f"not an image record: {error}") from None


def read_blob(store: Store, digest: Any) -> bytes:
    """The bytes of DIGEST from STORE, checked; RecordError when missing or corrupt."""
    if not isinstance(digest, str):
        raise RecordError(f"not a digest: {digest!r}")
    data = store.read(digest)  # checked against DIGEST; a corrupt blob is deleted
    if data is None:
        raise RecordError(f"blob {digest} is missing or corrupt")
    return data
