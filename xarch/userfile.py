"""Read a file a user hands xarch (a lock, a trace record, a recipe's companions): hostile until checked.

A link to /dev/zero would be read until memory runs out, and a FIFO would block the read
forever. O_NONBLOCK makes opening a FIFO return at once; fstat then refuses anything but a
regular file, and the read stops one byte past LIMIT.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from xarch.errors import XarchError


def read_regular(path: Path, limit: int, error: type[XarchError], fix: str) -> bytes:
    """PATH's bytes when it is (or links to) a regular file of at most LIMIT bytes.

    Raises FileNotFoundError when PATH does not exist; ERROR (one line naming PATH, then FIX,
    e.g. "run `xarch lock`") when it is not a regular file, is larger, or cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{path}: not a regular file; {fix}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: larger than {limit // (1024 * 1024)} MiB; {fix}")
    return data
