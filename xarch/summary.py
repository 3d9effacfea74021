"""What `build` and `inspect` print: per platform, manifest digest, size and layers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xarch.errors import InputError
from xarch.oci.digest import platform_name, sha256_digest
from xarch.oci.layout import Artifact, LayoutError, LayoutReader
from xarch.oci.model import DockerArchiveSource, ImageIndex, images_of, layout_top
from xarch.oci.model import Image as ModelImage
from xarch.units import human_size
from xarch.visible import visible

if TYPE_CHECKING:
    from rich.console import Console


class InspectError(InputError):
    """A path `inspect` cannot summarize: neither an OCI layout, an oci-archive nor a
    docker-archive, or unreadable as one; the message names the path (exit 2)."""


@dataclass(frozen=True)
class ImageRow:
    """One platform's line: PLATFORM ("linux/arm/v7"), MANIFEST_DIGEST ("sha256:…"; a
    docker-archive has none), COMPRESSED_SIZE in bytes (the sum of its layers' descriptor
    sizes, OCI image-spec manifest.md; a docker-archive's layer file sizes), LAYERS (a count)."""

    platform: str
    manifest_digest: str
    compressed_size: int
    layers: int


@dataclass(frozen=True)
class Summary:
    """What `build` and `inspect` print of one image: SOURCE (as the user named it),
    INDEX_DIGEST (of the image index, OCI image-spec image-index.md; None when index.json
    names the manifests itself, or for a docker-archive), one ImageRow per platform in order, and KIND."""

    source: str
    index_digest: str | None
    images: tuple[ImageRow, ...]
    kind: str = "oci"  # oci, oci-archive or docker-archive (xarch.registry.imageref)

    def to_json(self) -> dict[str, Any]:
        """The `--json` form: {source, kind, index_digest, images: [{platform, manifest_digest,
        compressed_size, layers}]}."""
        return {"source": self.source, "kind": self.kind, "index_digest": self.index_digest,
                "images": [asdict(row) for row in self.images]}


def _row(platform: dict[str, str], manifest_bytes: bytes, source: str = "") -> ImageRow:
    from xarch.oci.schema import parse_document  # pydantic: only for manifests read from elsewhere

    where = f"{source}: manifest {sha256_digest(manifest_bytes)}" if source else "manifest"
    manifest = parse_document(manifest_bytes, where, "manifest")
    layers = manifest.get("layers", [])
    return ImageRow(platform_name(platform), sha256_digest(manifest_bytes),
                    sum(int(layer["size"]) for layer in layers), len(layers))


def summarize_artifact(artifact: Artifact, source: str, kind: str = "oci") -> Summary:
    """The summary of ARTIFACT (a build's result, in memory; nothing is read from disk),
    labelled SOURCE and KIND. Its manifests are the ones xarch wrote for exactly these layers, so
    they are not parsed again (no schema, no pydantic on the way out of a build)."""
    rows = tuple(ImageRow(platform_name(image.platform), sha256_digest(image.manifest_bytes),
                          sum(layer.size for layer in image.layers), len(image.layers))
                 for image in artifact.images)
    return Summary(source, sha256_digest(artifact.index_bytes), rows, kind)


def summarize_path(path: Path, kind: str | None = None, source: str | None = None) -> Summary:
    """Summary of an OCI layout folder, an oci-archive or a docker-archive at PATH.

    KIND is what xarch.registry.imageref took PATH for (None: decide from the files); SOURCE labels it.
    Every blob the summary stands for is read and checked against its descriptor (layers are
    hashed as they stream, not kept): a corrupt image raises BlobMismatch rather than being
    described; a malformed descriptor or JSON document raises BadDescriptor or DocumentError.
    Anything else unreadable raises InspectError naming PATH. All exit 2. Formats: the OCI
    image-layout spec (a folder or its tar), `docker save`'s manifest.json archive.
    """
    label = source or str(path)
    try:
        reader = LayoutReader(path)
        try:
            if reader.has("index.json") and kind != "docker-archive":
                summary = _summarize_layout(reader, label)
                return replace(summary, kind="oci-archive" if reader.is_archive else "oci")
            if reader.has("manifest.json"):
                return replace(_summarize_docker_archive(reader, label), kind="docker-archive")
            raise InspectError(f"{path}: neither an OCI layout nor a docker-archive")
        finally:
            reader.close()
    except LayoutError as error:  # it names the layout already: named once, not twice
        text = str(error)
        raise InspectError(text if text.startswith(str(path)) else f"{path}: cannot read: {text}") from None


def _image_row(image: ModelImage) -> ImageRow:
    """IMAGE's row, its config and layers hashed against their descriptors (not kept)."""
    if image.descriptor is None:  # a docker-archive, whose files were hashed when it was opened
        platform, digest = image.platform, "(docker-archive: no manifest)"
    else:
        platform, digest = image.descriptor.platform or {}, image.descriptor.digest
        image.verify()
    return ImageRow(platform_name(platform), digest, sum(d.size for d in image.layer_descriptors),
                    len(image.layer_descriptors))


def _summarize_layout(reader: LayoutReader, source: str) -> Summary:
    top = layout_top(reader)
    index_digest = top.digest if isinstance(top, ImageIndex) else None
    return Summary(source, index_digest, tuple(_image_row(image) for image in images_of(top)))


def _summarize_docker_archive(reader: LayoutReader, source: str) -> Summary:
    return Summary(source, None, tuple(_image_row(image) for image in DockerArchiveSource(reader).images()))


def print_summary(summary: Summary, as_json: bool, console: Console | None) -> None:
    """SUMMARY as JSON on stdout (AS_JSON: Summary.to_json, keys sorted, indent 2); else, on a
    terminal (CONSOLE, rich), a table (platform, manifest digest, compressed size in human units,
    layers); else (CONSOLE None: a pipe, a CI log) the same columns as plain aligned lines, as
    `docker images` prints them; then the index digest. Terminal-unsafe characters in names are
    shown escaped (visible)."""
    if as_json:
        print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        return
    title = visible(f"{summary.source} ({summary.kind})")
    rows = [(visible(row.platform), row.manifest_digest, human_size(row.compressed_size), str(row.layers))
            for row in summary.images]
    index = f"index digest: {summary.index_digest}" if summary.index_digest else ""
    if console is None:
        print("\n".join([title, *_aligned([("PLATFORM", "MANIFEST DIGEST", "COMPRESSED", "LAYERS"), *rows]),
                         *filter(None, [index])]))
        return
    from rich.table import Table
    from rich.text import Text

    # Text, not str: rich would read `[…]` in a path or an index's platform fields as markup.
    table = Table(title=Text(title), title_justify="left")
    table.add_column("platform", no_wrap=True, overflow="ellipsis")  # one row per platform, always
    table.add_column("manifest digest", no_wrap=True)
    table.add_column("compressed", justify="right")
    table.add_column("layers", justify="right")
    for platform, digest, size, layers in rows:
        table.add_row(Text(platform), digest, size, layers)
    console.print(table)
    if index:
        console.print(index, markup=False, highlight=False)


def _aligned(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """ROWS as lines of columns three spaces apart, the last two (sizes, counts) right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return [f"{a:<{widths[0]}}   {b:<{widths[1]}}   {c:>{widths[2]}}   {d:>{widths[3]}}"
            for a, b, c, d in rows]
