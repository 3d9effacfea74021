"""xarch's layer writer on a folder: `python -m benchmarks.layer_writer ROOT OUT EPOCH [gzip|zstd]`.

Walks ROOT (names starting with "." left out, folders sorted), one `Entry` per file with its
git-style mode (0755 when the owner may execute, else 0644), and streams one layer through
`xarch.oci.layer.write_layer` (level 6) into a store beside OUT, then moves the blob to OUT.
Prints the layer's diff_id, compressed size and uncompressed size (bytes), space-separated.
Run in its own interpreter so its wall time and peak RSS are measured alone.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from xarch.oci.layer import write_layer
from xarch.oci.store import Store
from xarch.oci.tree import Entry, Tree


def tree_of(root: Path) -> Tree:
    """The image tree of ROOT, placed under ROOT's own name (ROOT=/x/data gives data/...)."""
    tree = Tree()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(folder)
        relative = os.path.relpath(folder, root.parent)
        tree.add(Entry(relative, "dir", 0o755))
        for name in files:
            if name.startswith("."):
                continue
            mode = 0o755 if os.stat(base / name).st_mode & 0o100 else 0o644
            tree.add(Entry(f"{relative}/{name}", "file", mode, source=base / name))
    return tree


def main() -> None:
    root, out, epoch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    algorithm = sys.argv[4] if len(sys.argv) > 4 else "gzip"
    tree = tree_of(root)
    with tempfile.TemporaryDirectory(dir=out.parent) as store:
        layer = write_layer("data", list(tree), epoch, Store(Path(store)), algorithm, 6)
        if layer.path is None:  # write_layer streams into the store: its blob is always a file
            raise SystemExit("layer_writer: write_layer returned a layer held in memory")
        os.replace(layer.path, out)
    print(layer.diff_id, layer.size, layer.uncompressed_size)


if __name__ == "__main__":
    main()
