"""Open what `xarch diff` compares: an OCI layout, an oci-archive, a docker-archive or a registry reference.

Every kind becomes the same `ImageSource`: the index (when there is one), and per platform
the manifest, the config and the layers, each layer opened as a stream only when its files
are compared. Small JSON blobs are checked against their digests when read; layer blobs are
checked while they stream (see xarch.diff.layers).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from xarch.errors import InputError, XarchError
from xarch.oci.layout import LayoutError, LayoutReader, image_entry
from xarch.oci.schema import parse_document
from xarch.oci.verified import BadDescriptor, descriptor_fields, json_object
from xarch.registry.imageref import DOCKER_ARCHIVE, REGISTRY, parse_image_ref

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"

if TYPE_CHECKING:
    from xarch.registry.client import Settings


class DiffError(InputError):
    """An input of `xarch diff` cannot be read. Exit 2, like diff(1) when in trouble."""

    exit_code = 2


def platform_key(platform: dict[str, Any]) -> str:
    """"linux/arm64/v8": os/architecture/variant, how images are matched across A and B."""
    return "/".join(str(platform[key]) for key in ("os", "architecture", "variant") if platform.get(key))


@dataclass(frozen=True)
class LayerRef:
    """One layer of a platform image: its position (0-based), blob digest and size in bytes, media
    type, diff_id from the config (None if absent), history's created_by, and how to open the blob.
    """

    position: int
    digest: str  # the blob's sha256 (for a docker-archive: of the file as stored)
    size: int
    media_type: str
    diff_id: str | None  # from the config's rootfs, when it has one for this position
    name: str  # history created_by of this layer ("" when there is none)
    open: Callable[[], IO[bytes]]


@dataclass
class PlatformImage:
    """One platform's image as diff reads it: platform name, config digest and parsed config, layers,
    and the manifest (None for a docker-archive, which stores none).
    """

    platform: str
    config_digest: str
    config: dict[str, Any]
    layers: list[LayerRef]
    manifest_digest: str | None = None  # None for a docker-archive, which stores no manifest
    manifest: dict[str, Any] | None = None


@dataclass
class ImageSource:
    """An image opened for diff: its label, kind (oci, oci-archive, docker-archive, registry), the
    platform images, the index (digest and JSON) when there is one, and the layout's ref.name tag.
    Use it as a context manager: close() releases the files and temporary folders it holds.
    """

    label: str
    kind: str  # oci, oci-archive, docker-archive, registry
    images: list[PlatformImage] = field(default_factory=list)
    index_digest: str | None = None
    index: dict[str, Any] | None = None
    tag: str | None = None  # the layout's ref.name: in index.json, outside every digest
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release what opening the source took (open archives, extracted folders), last opened first."""
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json(data: bytes, what: str, kinds: tuple[type, ...] = (dict,)) -> Any:
    return json_object(data, what, kinds)


def _layer_names(config: dict[str, Any], where: str) -> list[str]:
    """created_by of each history entry that has a layer (empty_layer entries have none)."""
    history = config.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise BadDescriptor(f"{where}: history is not a list of JSON objects")
    return [str(h.get("created_by", "")) for h in history if not h.get("empty_layer")]


def _layers(config: dict[str, Any], blobs: list[tuple[str, int, str]],
            opener: Callable[[int], Callable[[], IO[bytes]]], where: str) -> list[LayerRef]:
    """The layers of an image, named from CONFIG (parsed JSON, its types checked here; the OCI image
    spec's config.md: rootfs.diff_ids a list of digests, history a list of objects)."""
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or [] if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise BadDescriptor(f"{where}: rootfs.diff_ids is not a list of digests")
    names = _layer_names(config, where)
    return [
        LayerRef(position, digest, size, media_type,
                 diff_ids[position] if position < len(diff_ids) else None,
                 names[position] if position < len(names) else "", opener(position))
        for position, (digest, size, media_type) in enumerate(blobs)
    ]


def _open_layout(files: LayoutReader, source: ImageSource, verify_layers: bool) -> None:
    label = source.label
    # The top index is checked against its schema first, as every other reader does.
    top = parse_document(files.read("index.json"), f"{label}: index.json", "index")
    try:
        first = image_entry(top, f"{label}: index.json")
    except LayoutError as error:
        raise DiffError(str(error)) from None
    descriptors: Any = [first]
    media_type, digest, size = descriptor_fields(first, f"{label}: index.json")
    annotations = first.get("annotations") or {}
    source.tag = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    if media_type in INDEX_TYPES:
        source.index_digest = digest
        source.index = _json(files.blob(digest, size), f"{label}: index {digest}")
        descriptors = source.index.get("manifests") or []
        if not isinstance(descriptors, list):
            raise BadDescriptor(f"{label}: index {digest}: manifests is not a JSON array")
    for descriptor in descriptors:
        _, digest, size = descriptor_fields(descriptor, f"{label}: index")
        manifest = _json(files.blob(digest, size), f"{label}: manifest {digest}")
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            raise DiffError(f"{label}: nested index {digest} is not supported")
        where = f"{label}: manifest {digest}"
        _, config_digest, config_size = descriptor_fields(manifest.get("config"), where)
        config = _json(files.blob(config_digest, config_size), f"{label}: config {config_digest}")
        platform = descriptor.get("platform") or config
        if not isinstance(platform, dict):
            raise BadDescriptor(f"{label}: descriptor {digest} has a platform that is not a JSON object")
        layer_list = manifest.get("layers") or []
        if not isinstance(layer_list, list):
            raise BadDescriptor(f"{label}: manifest {digest}: layers is not a JSON array")
        layer_blobs = []
        for layer in layer_list:
            layer_type, layer_digest, layer_size = descriptor_fields(layer, f"{label}: manifest {digest}")
            if verify_layers:  # layers that compare equal by digest are never streamed otherwise
                files.verify_blob(layer_digest, layer_size)
            layer_blobs.append((layer_digest, layer_size, layer_type))
        config_where = f"{label}: config {config_digest}"
        layers = _layers(config, layer_blobs, _blob_opener(files, layer_blobs), config_where)
        source.images.append(PlatformImage(platform_key(platform), config_digest, config, layers,
                                           digest, manifest))


Opener = Callable[[int], Callable[[], IO[bytes]]]


def _blob_opener(files: LayoutReader, blobs: list[tuple[str, int, str]]) -> Opener:
    """Position -> opener of that layer's blob, verified as it streams (digest and size)."""
    def opener(position: int) -> Callable[[], IO[bytes]]:
        digest, size, _ = blobs[position]
        return lambda: files.open_blob(digest, size)  # type: ignore[return-value]
    return opener


def _file_opener(files: LayoutReader, paths: list[str]) -> Opener:
    return lambda position: (lambda: files.open(paths[position]))


def _open_docker_archive(files: LayoutReader, source: ImageSource) -> None:
    items = _json(files.read("manifest.json"), f"{source.label}: manifest.json", (list,))
    if not items:
        raise DiffError(f"{source.label}: manifest.json names no image")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Layers", []), list):
            raise BadDescriptor(f"{source.label}: manifest.json: an entry without Config and Layers")
        config_digest, _ = files.docker_file(item.get("Config"))
        config_data = files.read(item["Config"])
        config = _json(config_data, f"{source.label}: {item['Config']}")
        rootfs = config.get("rootfs") if isinstance(config.get("rootfs"), dict) else {}
        diff_ids: list[Any] = rootfs["diff_ids"] if isinstance(rootfs.get("diff_ids"), list) else []
        paths = list(item.get("Layers") or [])
        # A docker-archive names layers by path; its layers' digests are those of the stored files.
        layer_blobs = []
        for n, path in enumerate(paths):
            digest, size = files.docker_file(path, diff_ids[n] if n < len(diff_ids) else None)
            layer_blobs.append((digest, size, ""))
        layers = _layers(config, layer_blobs, _file_opener(files, paths), f"{source.label}: {item['Config']}")
        source.images.append(PlatformImage(platform_key(config), config_digest, config, layers))


def _labelled(label: str, error: Exception) -> str:
    """ERROR's message led by LABEL once (a LayoutError often names the path already: "d: d: blob …")."""
    message = str(error)
    return message if message.startswith(f"{label}:") else f"{label}: {message}"


def _open_path(path: Path, label: str, kind: str, verify_layers: bool = True) -> ImageSource:
    """Open PATH as KIND (oci, oci-archive, docker-archive), as xarch.registry.imageref decided it. Every
    blob is checked against its descriptor; VERIFY_LAYERS False skips hashing the layers up front
    (a registry pull verified them already)."""
    try:
        files = LayoutReader(path)
    except LayoutError as error:
        raise DiffError(_labelled(label, error)) from None
    is_archive = path.is_file()
    source = ImageSource(label, kind)
    source._closers.append(files.close)
    try:
        # Docker 25+ `docker save` writes both index.json and manifest.json: the index says more,
        # unless docker-archive: asked for the other view.
        if files.has("index.json") and kind != DOCKER_ARCHIVE:
            _open_layout(files, source, verify_layers)
        elif files.has("manifest.json") and is_archive:
            _open_docker_archive(files, source)
        else:
            raise DiffError(f"{label}: neither an OCI layout, an oci-archive nor a docker-archive")
    except LayoutError as error:
        source.close()
        raise DiffError(_labelled(label, error)) from None
    except BaseException:
        source.close()
        raise
    return source


def _open_registry(reference: str, label: str, settings: Settings | None) -> ImageSource:
    # Imported here: local comparisons need not load the HTTP stack.
    from xarch.registry.pull import pull_layout

    # Blobs are fetched (verified) into a temporary layout; layers stay compressed on disk.
    tmp = Path(tempfile.mkdtemp(prefix="xarch-diff-"))
    try:
        pull_layout(reference, tmp / "image", settings=settings)
        source = _open_path(tmp / "image", label, "oci", verify_layers=False)  # pull_layout verified them
    except DiffError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except XarchError as error:  # never 1, which means "they differ": the registry's own code (2 or 4)
        shutil.rmtree(tmp, ignore_errors=True)
        wrapped = DiffError(f"{label}: {error}")
        wrapped.exit_code = error.exit_code  # an unreachable registry stays exit 4
        raise wrapped from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    source.kind = "registry"
    source._closers.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    return source


def open_source(text: str, settings: Settings | None = None) -> ImageSource:
    """Open TEXT, parsed by xarch.registry.imageref: a layout folder, an oci-archive, a docker-archive (or
    `kind:PATH`), or a registry reference (`docker://REF`, `registry:REF`, host/name:tag)."""
    ref = parse_image_ref(text)
    if ref.kind == REGISTRY:
        assert ref.reference is not None
        return _open_registry(ref.reference, text, settings)
    assert ref.path is not None
    return _open_path(ref.path, text, ref.kind)
