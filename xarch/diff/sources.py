"""Open what `xarch diff` compares: an OCI layout, an oci-archive, a docker-archive or a registry reference.

Every kind becomes the same `ImageSource`: the index (when there is one), and per platform
the manifest, the config and the layers, each layer opened as a stream only when its files
are compared. Small JSON blobs are checked against their digests when read; layer blobs are
checked while they stream (see xarch.diff.layers).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from xarch.errors import XarchError
from xarch.imageref import DOCKER_ARCHIVE, REGISTRY, parse_image_ref
from xarch.oci.digest import hex_of, sha256_digest

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"


class DiffError(XarchError):
    """An input of `xarch diff` cannot be read. Exit 2, like diff(1) when in trouble."""

    exit_code = 2


def platform_key(platform: dict[str, Any]) -> str:
    """"linux/arm64/v8": os/architecture/variant, how images are matched across A and B."""
    return "/".join(str(platform[key]) for key in ("os", "architecture", "variant") if platform.get(key))


@dataclass(frozen=True)
class LayerRef:
    position: int
    digest: str  # the blob's sha256 (for a docker-archive: of the file as stored)
    size: int
    media_type: str
    diff_id: str | None  # from the config's rootfs, when it has one for this position
    name: str  # history created_by of this layer ("" when there is none)
    open: Callable[[], IO[bytes]]


@dataclass
class PlatformImage:
    platform: str
    config_digest: str
    config: dict[str, Any]
    layers: list[LayerRef]
    manifest_digest: str | None = None  # None for a docker-archive, which stores no manifest
    manifest: dict[str, Any] | None = None


@dataclass
class ImageSource:
    label: str
    kind: str  # oci, oci-archive, docker-archive, registry
    images: list[PlatformImage] = field(default_factory=list)
    index_digest: str | None = None
    index: dict[str, Any] | None = None
    tag: str | None = None  # the layout's ref.name: in index.json, outside every digest
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Files:
    """Read files by relative path from a folder or from a tar archive (without unpacking it)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_file():
            try:
                self._tar = tarfile.open(path)  # an uncompressed archive is indexed by seeking, not reading
            except tarfile.TarError as error:
                raise DiffError(f"{label}: not a tar archive ({error})") from None
            for member in self._tar.getmembers():
                if member.isfile():
                    self._members[member.name.removeprefix("./")] = member

    def has(self, relative: str) -> bool:
        return (self.path / relative).is_file() if self._tar is None else relative in self._members

    def open(self, relative: str) -> IO[bytes]:
        if self._tar is None:
            try:
                return open(self.path / relative, "rb")
            except OSError as error:
                raise DiffError(f"{self.label}: cannot read {relative}: {error.strerror}") from None
        member = self._members.get(relative)
        handle = self._tar.extractfile(member) if member else None
        if handle is None:
            raise DiffError(f"{self.label}: {relative} is missing")
        return handle

    def read(self, relative: str) -> bytes:
        with self.open(relative) as handle:
            return handle.read()

    def size(self, relative: str) -> int:
        if self._tar is None:
            return (self.path / relative).stat().st_size
        return self._members[relative].size

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as error:
        raise DiffError(f"{what}: not JSON ({error})") from None
    if not isinstance(value, (dict, list)):
        raise DiffError(f"{what}: not a JSON object")
    return value  # type: ignore[return-value]


def _layer_names(config: dict[str, Any]) -> list[str]:
    """created_by of each history entry that has a layer (empty_layer entries have none)."""
    return [str(h.get("created_by", "")) for h in config.get("history") or [] if not h.get("empty_layer")]


def _layers(config: dict[str, Any], blobs: list[tuple[str, int, str]],
            opener: Callable[[int], Callable[[], IO[bytes]]]) -> list[LayerRef]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    names = _layer_names(config)
    return [
        LayerRef(position, digest, size, media_type,
                 diff_ids[position] if position < len(diff_ids) else None,
                 names[position] if position < len(names) else "", opener(position))
        for position, (digest, size, media_type) in enumerate(blobs)
    ]


class _LayoutBlobs:
    def __init__(self, files: _Files) -> None:
        self.files = files

    def path(self, digest: str) -> str:
        try:
            return f"blobs/sha256/{hex_of(digest)}"
        except ValueError as error:
            raise DiffError(f"{self.files.label}: {error}") from None

    def read(self, digest: str) -> bytes:
        data = self.files.read(self.path(digest))
        if sha256_digest(data) != digest:
            raise DiffError(f"{self.files.label}: blob {digest} does not match its digest")
        return data

    def opener(self, digest: str) -> Callable[[], IO[bytes]]:
        return lambda: self.files.open(self.path(digest))


def _open_layout(files: _Files, source: ImageSource) -> None:
    blobs = _LayoutBlobs(files)
    top = _json(files.read("index.json"), f"{source.label}: index.json")
    descriptors = top.get("manifests") or []
    if not descriptors:
        raise DiffError(f"{source.label}: index.json names no image")
    first = descriptors[0]
    source.tag = (first.get("annotations") or {}).get(REF_NAME)
    if first.get("mediaType") in INDEX_TYPES:
        source.index_digest = first["digest"]
        source.index = _json(blobs.read(first["digest"]), f"{source.label}: index {first['digest']}")
        descriptors = source.index.get("manifests") or []
    for descriptor in descriptors:
        digest = descriptor["digest"]
        manifest = _json(blobs.read(digest), f"{source.label}: manifest {digest}")
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            raise DiffError(f"{source.label}: nested index {digest} is not supported")
        config_digest = manifest["config"]["digest"]
        config = _json(blobs.read(config_digest), f"{source.label}: config {config_digest}")
        platform = descriptor.get("platform") or config
        layer_blobs = [(d["digest"], int(d["size"]), d.get("mediaType", ""))
                       for d in manifest.get("layers", [])]
        digests = [digest for digest, _, _ in layer_blobs]
        layers = _layers(config, layer_blobs, lambda n, d=digests: blobs.opener(d[n]))  # type: ignore[misc]
        source.images.append(PlatformImage(platform_key(platform), config_digest, config, layers,
                                           digest, manifest))


def _open_docker_archive(files: _Files, source: ImageSource) -> None:
    items = _json(files.read("manifest.json"), f"{source.label}: manifest.json")
    if not isinstance(items, list) or not items:
        raise DiffError(f"{source.label}: manifest.json names no image")
    for item in items:
        config_data = files.read(item["Config"])
        config = _json(config_data, f"{source.label}: {item['Config']}")
        paths = list(item.get("Layers") or [])
        # A docker-archive names layers by path; its layers' digests are those of the stored files.
        layer_blobs = []
        for path in paths:
            with files.open(path) as handle:
                digest = _sha256_stream(handle)
            layer_blobs.append((digest, files.size(path), ""))
        layers = _layers(config, layer_blobs, lambda n, p=paths: (lambda: files.open(p[n])))
        source.images.append(PlatformImage(platform_key(config), sha256_digest(config_data), config, layers))


def _sha256_stream(handle: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _open_path(path: Path, label: str, kind: str) -> ImageSource:
    """Open PATH as KIND (oci, oci-archive, docker-archive), as xarch.imageref decided it."""
    files = _Files(path, label)
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
    except (KeyError, TypeError, ValueError) as error:
        source.close()
        raise DiffError(f"{label}: malformed image ({type(error).__name__}: {error})") from None
    except BaseException:
        source.close()
        raise
    return source


def _open_registry(reference: str, label: str, insecure: bool) -> ImageSource:
    # Imported here: local comparisons need not load the HTTP stack.
    from xarch.registry.client import client_settings
    from xarch.registry.pull import pull_layout

    # Blobs are fetched (verified) into a temporary layout; layers stay compressed on disk.
    tmp = Path(tempfile.mkdtemp(prefix="xarch-diff-"))
    try:
        pull_layout(reference, tmp / "image", settings=client_settings(insecure=insecure))
        source = _open_path(tmp / "image", label, "oci")
    except DiffError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except XarchError as error:  # exit 2 (trouble), not 1, which means "they differ"
        shutil.rmtree(tmp, ignore_errors=True)
        raise DiffError(f"{label}: {error}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    source.kind = "registry"
    source._closers.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    return source


def open_source(text: str, insecure: bool = False) -> ImageSource:
    """Open TEXT, parsed by xarch.imageref: a layout folder, an oci-archive, a docker-archive (or
    `kind:PATH`), or a registry reference (`docker://REF`, `registry:REF`, host/name:tag)."""
    ref = parse_image_ref(text)
    if ref.kind == REGISTRY:
        assert ref.reference is not None
        return _open_registry(ref.reference, text, insecure)
    assert ref.path is not None
    return _open_path(ref.path, text, ref.kind)
