"""A large two-platform OCI layout to push: `python -m benchmarks.large_layout ROOT OUT EPOCH`.

Every file under ROOT (names starting with "." left out) in one layer per platform (amd64,
arm64), level-6 gzip by xarch's OCI core; the arm64 layer's mtimes are EPOCH+1, so the two
layers are distinct blobs. Writes the layout (index tagged "large") to the folder OUT.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from xarch import platforms
from xarch.oci.compress import compressor_id
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.index import build_index
from xarch.oci.layer import build_layer
from xarch.oci.layout import Artifact, write_layout
from xarch.oci.tree import Entry, Tree


def main() -> None:
    root, out, epoch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    tree = Tree()
    for folder, _dirs, files in os.walk(root):
        relative = os.path.relpath(folder, root.parent)
        tree.add(Entry(relative, "dir", 0o755))
        for name in files:
            if not name.startswith("."):
                tree.add(Entry(f"{relative}/{name}", "file", 0o644, source=Path(folder) / name))
    images = []
    for offset, arch in enumerate(("amd64", "arm64")):  # another mtime per platform: two distinct layers
        layer = build_layer("data", list(tree), epoch + offset, 6)
        platform = platforms.get(arch).oci_platform()
        images.append(build_image(platform, [layer], RuntimeConfig(), epoch, compressor_id(6)))
    index = build_index([image.manifest_descriptor for image in images])
    write_layout(Artifact(index, tuple(images), "large"), out)


if __name__ == "__main__":
    main()
