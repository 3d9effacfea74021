"""What xarch keeps of a file on disk besides its bytes and mode: file capabilities and
hard links. Shared by recipe `files:` (contents.py) and stage outputs (rootfs.py).

- Extended attributes: only `security.capability` (what setcap wrote), made portable
  (revision 2, see xarch.sources.debian.capabilities.portable). Others are the build
  host's (SELinux labels, user.* from a desktop) and are never taken.
- Hard links: within one walk, a regular file whose inode was already taken becomes a
  hard-link entry to the first path found (walks are sorted, so the first is stable).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from xarch.errors import BuildError
from xarch.sources.debian.capabilities import XATTR, CapabilityError, portable

KEPT = (XATTR,)


def kept_xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    """The extended attributes of PATH an image keeps, as (name, value) pairs sorted by name.

    Raises BuildError naming PATH for a security.capability value that is not a
    capability set (it would not mean what the kernel expects).
    """
    found = []
    for name in KEPT:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as error:
            if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
                continue
            raise
        try:
            found.append((name, portable(value)))
        except CapabilityError as error:
            raise BuildError(f"{path}: {error}") from None
    return tuple(found)


class HardLinks:
    """Remembers the image path of each multiply-linked inode seen in one walk."""

    def __init__(self) -> None:
        self.first: dict[tuple[int, int], str] = {}

    def seen(self, info: os.stat_result, image_path: str) -> str | None:
        """The image path this inode was first taken at, or None (and remember IMAGE_PATH)."""
        if info.st_nlink < 2:
            return None
        key = (info.st_dev, info.st_ino)
        if key in self.first:
            return self.first[key]
        self.first[key] = image_path
        return None
