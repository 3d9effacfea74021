"""Small real images for diff tests, written through xarch's OCI core: two layers, two platforms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from xarch.oci.compress import compressor_id
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.index import build_index
from xarch.oci.layer import build_layer
from xarch.oci.layout import Artifact
from xarch.oci.tree import Entry

EPOCH = 1_700_000_000
PLATFORMS = ({"architecture": "amd64", "os": "linux"},
             {"architecture": "arm64", "os": "linux", "variant": "v8"})


def base_entries() -> dict[str, Entry]:
    entries = [
        Entry("bin", "dir", 0o755),
        Entry("bin/tool", "file", 0o755, data=b"\x7fELF pretend binary\n" * 100),
        Entry("bin/sh", "symlink", 0o777, linkname="tool"),
        Entry("etc", "dir", 0o755),
        Entry("etc/motd", "file", 0o644, data=b"hello\n"),
        Entry("etc/config", "file", 0o644, data=b"a=1\n"),
    ]
    return {entry.path: entry for entry in entries}


Change = Callable[[dict[str, Entry]], None]


def make_artifact(change: Change | None = None, env: tuple[str, ...] = ("PATH=/bin",),
                  index_annotations: dict[str, str] | None = None) -> Artifact:
    images = []
    for platform in PLATFORMS:
        entries = base_entries()
        if change:
            change(entries)
        base = [e for p, e in entries.items() if p.startswith("bin")]
        app = [e for p, e in entries.items() if not p.startswith("bin")]
        layers = [build_layer("base", base, EPOCH, 6), build_layer("app", app, EPOCH, 6)]
        images.append(build_image(platform, layers, RuntimeConfig(cmd=["/bin/sh"], env=list(env)), EPOCH,
                                  compressor_id(6), {"org.opencontainers.image.title": "t"}))
    index = build_index([image.manifest_descriptor for image in images], index_annotations or {"k": "v"})
    return Artifact(index, tuple(images), "1.0")


def replace_entry(path: str, **fields: object) -> Change:
    """A change that replaces fields of the entry at PATH (e.g. data=, mode=, linkname=)."""
    def change(entries: dict[str, Entry]) -> None:
        entries[path] = replace(entries[path], **fields)  # type: ignore[arg-type]
    return change
