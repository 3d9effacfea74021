"""The assembler: per-platform manifest descriptors → one OCI image index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xarch.oci.digest import OCI_INDEX, Descriptor, canonical_json


def build_index(manifests: Sequence[Descriptor], annotations: dict[str, str] | None = None) -> bytes:
    """Index bytes with MANIFESTS in the given (the recipe's platform) order.

    The same function serves a local build and `xarch assemble` from a registry, so the
    two give the same bytes for the same manifests.
    """
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor.to_json() for descriptor in manifests],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return canonical_json(index)
