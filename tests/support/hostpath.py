"""A PATH that hides the host's cross toolchains: a second host that never installed them."""

from __future__ import annotations

import os
import re
from pathlib import Path

# aarch64-linux-gnu-gcc, x86_64-linux-gnu-ld, arm-linux-gnueabihf-as, … (any GNU triplet's tools)
CROSS_TOOL = re.compile(r"^[a-z0-9_]+-linux-gnu[a-z]*-")


def path_without_cross_tools(folder: Path, path: str | None = None) -> str:
    """FOLDER filled with links to every program on PATH except cross tools; returns it as a PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            target = Path(directory) / name
            link = folder / name
            if CROSS_TOOL.match(name) or link.exists() or link.is_symlink():
                continue
            if target.is_file() and os.access(target, os.X_OK):
                link.symlink_to(target)
    return str(folder)
