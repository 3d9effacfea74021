"""The JSON documents of an image (index, manifest, config, docker-archive manifest.json),
parsed and checked once, where they are read.

Every reader of layouts and archives (inspect, diff, load, push) indexes these documents
(`manifests[0]["digest"]`, `int(layer["size"])`…); a document of the wrong shape must be one
error naming the file and the field, never a KeyError or TypeError deep inside a command.
Shapes follow the OCI image spec (image-index.md, manifest.md, descriptor.md, config.md)
and Docker's `docker save` manifest.json; fields xarch does not read are allowed through.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, Literal

from xarch.errors import InputError

Kind = Literal["index", "manifest", "image", "config", "docker-manifest"]


class DocumentError(InputError):
    """An image's JSON document is not JSON or not of its kind's shape (exit 2)."""


@cache
def _checks() -> dict[str, Any]:
    """The pydantic checks of each kind (strict; unknown fields allowed), made on first use: a
    document of the right shape never needs them (see _well_formed), so reading one costs no
    pydantic import. They decide, and word the error, whenever _well_formed is not sure."""
    from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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

    return {
        "index": TypeAdapter(_Index),
        "manifest": TypeAdapter(_Manifest),
        "config": TypeAdapter(_Config),
        "docker-manifest": TypeAdapter(list[_DockerItem]),
    }


# The shapes above, checked by hand for the common case: True only when pydantic would accept
# VALUE too (tests/unit/test_startup_imports.py checks that on generated documents); anything
# unusual (a missing or wrongly typed field, a bool for an int, a digest with a newline) is False
# and goes to pydantic, which decides and words the error.
_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _text(value: Any) -> bool:
    return type(value) is str


def _optional_text(value: Any) -> bool:
    return value is None or type(value) is str


def _texts(value: Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _platform(value: Any) -> bool:
    return (
        type(value) is dict
        and _text(value.get("architecture"))
        and _text(value.get("os"))
        and _optional_text(value.get("variant"))
    )


def _descriptor(value: Any) -> bool:
    if type(value) is not dict:
        return False
    digest, size, annotations = value.get("digest"), value.get("size"), value.get("annotations")
    return (
        _text(value.get("mediaType"))
        and type(digest) is str
        and _SHA256_DIGEST.fullmatch(digest) is not None
        and type(size) is int
        and size >= 0
        and (value.get("platform") is None or _platform(value["platform"]))
        and (
            annotations is None
            or (type(annotations) is dict and all(type(item) is str for item in annotations.values()))
        )
    )


def _descriptors(value: Any) -> bool:
    return type(value) is list and all(_descriptor(item) for item in value)


def _config(value: Any) -> bool:
    if type(value) is not dict or not all(
        _optional_text(value.get(key)) for key in ("architecture", "os", "variant")
    ):
        return False
    rootfs, history = value.get("rootfs"), value.get("history")
    if rootfs is not None and not (
        type(rootfs) is dict and ("diff_ids" not in rootfs or _texts(rootfs["diff_ids"]))
    ):
        return False
    return history is None or (type(history) is list and all(type(item) is dict for item in history))


def _docker_item(value: Any) -> bool:
    return (
        type(value) is dict
        and _text(value.get("Config"))
        and _texts(value.get("Layers"))
        and (value.get("RepoTags") is None or _texts(value["RepoTags"]))
    )


def _well_formed(kind: str, value: Any) -> bool:
    """Whether VALUE is surely a KIND (no pydantic needed); False: ask pydantic."""
    if kind == "index":
        return type(value) is dict and _descriptors(value.get("manifests"))
    if kind == "manifest":
        return type(value) is dict and _descriptor(value.get("config")) and _descriptors(value.get("layers"))
    if kind == "config":
        return _config(value)
    if kind == "docker-manifest":
        return type(value) is list and all(_docker_item(item) for item in value)
    return False


def parse_document(data: bytes, where: str, kind: Kind) -> Any:
    """DATA parsed as JSON and checked to be a KIND; the parsed value (dicts and lists).

    KIND "image" is an index when the document has "manifests", else a manifest.
    Raises DocumentError naming WHERE and the first wrong field.
    """
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, deep nesting
        raise DocumentError(f"{where}: not JSON ({error})") from None
    if kind == "image":
        kind = "index" if isinstance(value, dict) and "manifests" in value else "manifest"
    if _well_formed(kind, value):
        return value
    from pydantic import ValidationError

    try:
        _checks()[kind].validate_python(value)
    except ValidationError as error:
        first = error.errors()[0]
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
        what = f"not an image {kind}" if kind != "docker-manifest" else "not a docker-archive manifest.json"
        message = "should be a JSON object" if first["type"] in ("model_type", "dict_type") else first["msg"]
        detail = f"{field.lstrip('.')}: {message}" if field else str(message)
        raise DocumentError(f"{where}: {what} ({detail})") from None
    return value
