"""What `build` and `inspect` print: per platform, manifest digest, size and layers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from xarch.errors import XarchError
from xarch.oci.digest import DOCKER_MANIFEST_LIST, OCI_INDEX, platform_name, sha256_digest
from xarch.oci.layout import Artifact, LayoutError, LayoutReader
from xarch.units import human_size


class InspectError(XarchError):
    pass


@dataclass(frozen=True)
class ImageRow:
    platform: str
    manifest_digest: str
    compressed_size: int
    layers: int


@dataclass(frozen=True)
class Summary:
    source: str
    index_digest: str | None
    images: tuple[ImageRow, ...]
    kind: str = "oci"  # oci, oci-archive or docker-archive (xarch.imageref)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "index_digest": self.index_digest,
                "images": [asdict(row) for row in self.images]}


def _row(platform: dict[str, str], manifest_bytes: bytes) -> ImageRow:
    manifest = json.loads(manifest_bytes)
    layers = manifest.get("layers", [])
    return ImageRow(platform_name(platform), sha256_digest(manifest_bytes),
                    sum(int(layer["size"]) for layer in layers), len(layers))


def summarize_artifact(artifact: Artifact, source: str, kind: str = "oci") -> Summary:
    rows = tuple(_row(image.platform, image.manifest_bytes) for image in artifact.images)
    return Summary(source, sha256_digest(artifact.index_bytes), rows, kind)


def summarize_path(path: Path, kind: str | None = None, source: str | None = None) -> Summary:
    """Summary of an OCI layout folder, an oci-archive or a docker-archive at PATH.

    KIND is what xarch.imageref took PATH for (None: decide from the files); SOURCE labels it.
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
    except (LayoutError, KeyError, ValueError) as error:
        raise InspectError(f"{path}: cannot read: {error}") from None


def _summarize_layout(reader: LayoutReader, source: str) -> Summary:
    top = reader.top_index()
    descriptors = top.get("manifests") or []
    if not descriptors:
        raise InspectError(f"{source}: index.json names no image")
    first = descriptors[0]
    if first["mediaType"] in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        index_bytes = reader.blob(first["digest"])
        index = json.loads(index_bytes)
        rows = tuple(
            _row(d.get("platform") or {}, reader.blob(d["digest"])) for d in index.get("manifests", [])
        )
        return Summary(source, first["digest"], rows)
    rows = tuple(_row(d.get("platform") or {}, reader.blob(d["digest"])) for d in descriptors)
    return Summary(source, None, rows)


def _summarize_docker_archive(reader: LayoutReader, source: str) -> Summary:
    rows = []
    for item in json.loads(reader.read("manifest.json")):
        config = json.loads(reader.read(item["Config"]))
        platform = {key: config[key] for key in ("os", "architecture", "variant") if config.get(key)}
        sizes = [len(reader.read(layer)) for layer in item["Layers"]]
        no_manifest = "(docker-archive: no manifest)"
        rows.append(ImageRow(platform_name(platform), no_manifest, sum(sizes), len(sizes)))
    return Summary(source, None, tuple(rows))


def print_summary(summary: Summary, as_json: bool, console: Console) -> None:
    if as_json:
        print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        return
    table = Table(title=f"{summary.source} ({summary.kind})", title_justify="left")
    table.add_column("platform")
    table.add_column("manifest digest", no_wrap=True)
    table.add_column("compressed", justify="right")
    table.add_column("layers", justify="right")
    for row in summary.images:
        table.add_row(row.platform, row.manifest_digest, human_size(row.compressed_size), str(row.layers))
    console.print(table)
    if summary.index_digest:
        console.print(f"index digest: {summary.index_digest}", highlight=False)
