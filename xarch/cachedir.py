"""Where xarch's cache lives ($XARCH_CACHE), apart from the store that fills it (xarch.oci.store),
so that a command replayed from its record (xarch.cli.pushreplay) finds it without loading the
store's code."""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """The cache folder: $XARCH_CACHE, else $XDG_CACHE_HOME/xarch, else ~/.cache/xarch."""
    explicit = os.environ.get("XARCH_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "xarch"
