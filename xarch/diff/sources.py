"""Open what `xarch diff` compares: an OCI layout, an oci-archive, a docker-archive or a registry reference.

Every kind becomes the same `ImageSource`: the index (when there is one), and per platform
the manifest, the config and the layers, each layer opened as a stream only when its files
are compared. All of them are read through the read model (xarch.oci.model; a registry through
xarch.registry.source, streamed, nothing written to disk): small JSON blobs are checked
against their digests when read; layer blobs are checked while they stream (see xarch.diff.layers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from xarch.errors import InputError, XarchError
from xarch.oci.digest import REF_NAME
from xarch.oci.layout import LayoutError, LayoutReader
from xarch.oci.model import DockerArchiveSource, Image, ImageIndex, images_of, layout_top
from xarch.oci.schema import DocumentError
from xarch.oci.verified import BadDescriptor
from xarch.registry.imageref import DOCKER_ARCHIVE, REGISTRY, parse_image_ref

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
    type, diff_id from the config (None if absent), history's created_by, and how to open the blob
    and its uncompressed tar (xarch.oci.model.Layer).
    """

    position: int
    digest: str  # the blob's sha256 (for a docker-archive: of the file as stored)
    size: int
    media_type: str
    diff_id: str | None  # from the config's rootfs, when it has one for this position
    name: str  # history created_by of this layer ("" when there is none)
    open: Callable[[], IO[bytes]]  # the blob, checked against its descriptor as it streams
    open_tar: Callable[[], IO[bytes]]  # the uncompressed tar, checked against diff_id and descriptor


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


def _platform_image(image: Image) -> PlatformImage:
    """IMAGE (of the read model) as diff compares it, its layers hashed now: layers that compare equal
    by digest are never streamed otherwise, and a blob that is not its digest is never "identical"."""
    if image.descriptor is not None:  # a docker-archive's were hashed when opened
        image.verify()
    layers = [LayerRef(layer.position, layer.digest, layer.size, layer.descriptor.media_type, layer.diff_id,
                       layer.name, layer.open, layer.open_uncompressed)  # type: ignore[arg-type]
              for layer in image.layers()]  # (a VerifiedStream reads as an IO[bytes])
    return PlatformImage(platform_key(image.platform), image.config_descriptor.digest, image.config(), layers,
                         image.digest, image.manifest if image.descriptor else None)


def _open_layout(files: LayoutReader, source: ImageSource) -> None:
    top = layout_top(files)
    annotations = top.descriptor.annotations if top.descriptor else {}
    source.tag = annotations.get(REF_NAME)
    _add_images(source, top)


def _add_images(source: ImageSource, top: ImageIndex | Image) -> None:
    if isinstance(top, ImageIndex):
        source.index_digest, source.index = top.digest, top.index
    source.images.extend(_platform_image(image) for image in images_of(top))


def _open_docker_archive(files: LayoutReader, source: ImageSource) -> None:
    source.images.extend(_platform_image(image) for image in DockerArchiveSource(files).images())


def _labelled(label: str, error: Exception) -> str:
    """ERROR's message led by LABEL once (a LayoutError often names the path already: "d: d: blob …")."""
    message = str(error)
    return message if message.startswith(f"{label}:") else f"{label}: {message}"


def _open_path(path: Path, label: str, kind: str) -> ImageSource:
    """Open PATH as KIND (oci, oci-archive, docker-archive), as xarch.registry.imageref decided it. Every
    blob is checked against its descriptor, layers too (hashed up front: those that compare equal by
    digest are never streamed)."""
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
            _open_layout(files, source)
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
    """A registry image read in place (xarch.registry.source): its manifests, configs and layer blobs
    streamed and checked, none written to disk; a layer is streamed again when its files are compared."""
    # Imported here: local comparisons need not load the HTTP stack.
    from xarch.registry.errors import CorruptAnswer
    from xarch.registry.pull import open_published
    from xarch.registry.push import make_client
    from xarch.registry.reference import parse_reference

    source = ImageSource(label, "registry")
    try:
        ref = parse_reference(reference)
        client = make_client(ref, None, settings)
        source._closers.append(client.close)
        top, _ = open_published(ref, client)
        source.tag = ref.tag
        _add_images(source, top)  # every layer streamed and checked once, nothing written to disk
    except XarchError as error:  # never 1, which means "they differ": the registry's own code (2 or 4)
        source.close()
        wrapped = DiffError(_labelled(label, error))
        # A document the registry answered that is no image is the registry's fault, as in fetch_image.
        bad_answer = isinstance(error, (BadDescriptor, DocumentError, LayoutError))
        wrapped.exit_code = CorruptAnswer.exit_code if bad_answer else error.exit_code
        raise wrapped from None
    except BaseException:
        source.close()
        raise
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
