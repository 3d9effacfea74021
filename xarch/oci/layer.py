"""Layers: a set of tree entries → normalized tar → diff_id → gzip blob → digest."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, replace

from xarch.oci.compress import gzip_bytes
from xarch.oci.digest import OCI_LAYER_GZIP, Descriptor, sha256_digest
from xarch.oci.tar import sorted_entries, write_tar
from xarch.oci.tree import Entry, path_bytes


@dataclass(frozen=True)
class Layer:
    name: str
    diff_id: str  # sha256 of the uncompressed tar: the layer's identity
    blob: bytes  # the gzip bytes that are stored and pushed
    uncompressed_size: int
    entry_count: int

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_LAYER_GZIP, self.blob)


def fix_hardlinks(entries: list[Entry]) -> list[Entry]:
    """Make every hard-link group start at its first path in write order.

    tar needs a link's target written before the link. Whatever a producer chose as
    "the" file, the first path by bytes becomes the regular file and the others link to
    it, so the order cannot depend on how the producer walked its input. (Links to a file
    in another layer were made copies when the layers were split.)
    """
    by_path = {e.path: e for e in entries}
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if entry.type == "hardlink":
            target = by_path.get(entry.linkname)
            while target is not None and target.type == "hardlink":
                target = by_path.get(target.linkname)
            if target is None or target.type != "file":
                raise ValueError(f"{entry.path}: hard link to {entry.linkname!r}, which is not a file here")
            groups.setdefault(target.path, [target.path]).append(entry.path)
    result = dict(by_path)
    for target_path, members in groups.items():
        file_entry = by_path[target_path]
        ordered = sorted(members, key=path_bytes)
        first = ordered[0]
        result[first] = replace(by_path[first], type="file", linkname="", data=file_entry.data,
                                source=file_entry.source)
        for other in ordered[1:]:
            result[other] = replace(by_path[other], type="hardlink", linkname=first, data=None, source=None)
    return list(result.values())


def build_layer(name: str, entries: Iterable[Entry], epoch: int, level: int) -> Layer:
    ordered = sorted_entries(fix_hardlinks(list(entries)))
    buffer = io.BytesIO()
    result = write_tar(ordered, epoch, buffer)
    blob = gzip_bytes(buffer.getvalue(), level)
    assert result.sha256 == sha256_digest(buffer.getvalue())
    return Layer(name, result.sha256, blob, result.size, len(ordered))
