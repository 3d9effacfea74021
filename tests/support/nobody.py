"""Run a check as nobody in a forked child of the test process (tests as root only).

A real unprivileged process: no groups, no capabilities, dumpable as one that nobody starts.
Forked rather than started, so no interpreter file needs to be readable by nobody (the test's
Python may lie under /root, 0700); the child uses the modules the test process has imported.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

NOBODY = 65534
PR_SET_DUMPABLE = 4


def as_nobody(check: Callable[[Path], None], folder: Path) -> None:
    """Run CHECK(FOLDER) in a forked child that drops root for nobody (uid and gid 65534, no
    groups, so no capabilities), with FOLDER as its temporary folder. Raises AssertionError
    with the child's traceback when CHECK raises (SystemExit included) or the child dies."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            # A change of ids makes a process undumpable (its /proc files root's): a process that
            # nobody starts is dumpable, and needs that to write its own /proc/self/uid_map.
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            tempfile.tempdir = str(folder)
            check(folder)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, said or f"the child ended with status {status}"
