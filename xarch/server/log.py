"""The build server's log (xarch.server): one line at a time, never blocking and never failing."""

from __future__ import annotations

import contextlib
import os
from typing import TextIO


class Log:
    """The server's log: one line at a time to LOG's file, never blocking and never failing.

    A log that cannot take a line now (a pipe nobody reads, a terminal paused with Ctrl-S, a
    full disk, a closed pipe) loses that line: the server and its relays go on whatever the log
    does. The file is opened again through /proc (a file description of its own, so that
    O_NONBLOCK touches no other process's; O_APPEND, so a regular file is not overwritten);
    a log that cannot be (a socket) is written to as it is."""

    def __init__(self, log: TextIO) -> None:
        self.stream = log
        self.fd: int | None = None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.fd = os.open(f"/proc/self/fd/{log.fileno()}",
                              os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC)

    def say(self, line: str) -> None:
        """Write "xarch serve: LINE" now, or drop it."""
        text = f"xarch serve: {line}\n"
        if self.fd is None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(text)
                self.stream.flush()
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, text.encode("utf-8", "backslashreplace"))
