"""The JSON documents of an image (index, manifest, config, docker-archive manifest.json),
parsed and checked once, where they are read.

Every reader of layouts and archives (inspect, diff, load, push) indexes these documents
(`manifests[0]["digest"]`, `int(layer["size"])`…); a document of the wrong shape must be one
error naming the file and the field, never a KeyError or TypeError deep inside a command.
Shapes follow the OCI image spec (image-index.md, manifest.md, descriptor.md, config.md)
and Docker's `docker save` manifest.json; fields xarch does not read are allowed through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from xarch.errors import InputError
from xarch.oci.verified import parse_json

Kind = Literal["index", "manifest", "image", "config", "docker-manifest"]


class DocumentError(InputError):
    """An image's JSON document is not JSON or not of its kind's shape (exit 2)."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Platform(_Open):
    architecture: str
    os: str
    variant: str | None = None


class _Descriptor(_Open):
    mediaType: str  # noqa: N815 - the spec's field name (REQUIRED in descriptor.md)
    # xarch addresses blobs as blobs/sha256/<hex>: other algorithms are refused here, by name.
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    size: int = Field(ge=0)
    platform: _Platform | None = None
    annotations: dict[str, str] | None = None


class _Index(_Open):
    manifests: list[_Descriptor]


class _Manifest(_Open):
    config: _Descriptor
    layers: list[_Descriptor]


class _RootFs(_Open):
    diff_ids: list[str] = Field(default_factory=list)


class _Config(_Open):
    architecture: str | None = None
    os: str | None = None
    variant: str | None = None
    rootfs: _RootFs | None = None
    history: list[dict[str, Any]] | None = None


class _DockerItem(_Open):
    Config: str
    Layers: list[str]
    RepoTags: list[str] | None = None


_CHECKS: dict[str, TypeAdapter[Any]] = {
    "index": TypeAdapter(_Index),
    "manifest": TypeAdapter(_Manifest),
    "config": TypeAdapter(_Config),
    "docker-manifest": TypeAdapter(list[_DockerItem]),
}


def parse_document(data: bytes, where: str, kind: Kind) -> Any:
    """DATA parsed as JSON and checked to be a KIND; the parsed value (dicts and lists).

    KIND "image" is an index when the document has "manifests", else a manifest.
    Raises DocumentError naming WHERE and the first wrong field.
    """
    value = parse_json(data, where, DocumentError)  # one wording for bad JSON, deep nesting, huge numbers
    if kind == "image":
        kind = "index" if isinstance(value, dict) and "manifests" in value else "manifest"
    try:
        _CHECKS[kind].validate_python(value)
    except ValidationError as error:
        first = error.errors()[0]
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
        what = f"not an image {kind}" if kind != "docker-manifest" else "not a docker-archive manifest.json"
        message = "should be a JSON object" if first["type"] in ("model_type", "dict_type") else first["msg"]
        detail = f"{field.lstrip('.')}: {message}" if field else str(message)
        raise DocumentError(f"{where}: {what} ({detail})") from None
    return value
