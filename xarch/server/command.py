"""The process of one served command (forked by its relay, xarch.server.relay): it takes the
client's standard streams and other descriptors, working folder, environment, umask and signal
dispositions, leads a session of its own (no controlling terminal: it cannot prompt on the
server's), and runs the console script's main as the client would have.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn, TextIO


def run_command(carried: dict[str, Any], fds: list[int], targets: list[int], ready: int, go: int,
             relay: int, entry: Callable[[], None]) -> NoReturn:
    """The command's process (see the module); never returns. FDS are the received descriptors
    (stdin, stdout, stderr, the working folder, then the client's others), TARGETS the numbers
    they had in the client (the working folder's aside)."""
    status = 70
    try:
        # Ended with its relay (SIGTERM, then the cleanup xarch does on it): a command whose
        # relay is gone can no longer pass on its exit code, nor get its client's signals.
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != relay:
            os._exit(0)  # it died already
        os.setsid()
        os.write(ready, b"1")
        os.close(ready)
        if os.read(go, 1) != b"1":
            os._exit(0)  # the client did not say "go": it runs the command itself, or not at all
        _place(fds[:3] + fds[4:], targets, fds[3])
        os.umask(carried["umask"])
        os.environ.clear()
        os.environ.update(carried["env"])
        _forget_environment()
        _set_signals(carried["ignored"], carried["blocked"])
        sys.argv = list(carried["argv"])
        sys.stdin, sys.stdout, sys.stderr = _streams(carried["streams"])
        # What Python started with, as the client's were (shutil.get_terminal_size reads these)
        streams = (sys.stdin, sys.stdout, sys.stderr)
        for name, stream in zip(("__stdin__", "__stdout__", "__stderr__"), streams, strict=True):
            setattr(sys, name, stream)
        status = _main(entry)
    except BaseException as error:
        with contextlib.suppress(Exception):
            print(f"xarch: internal error: served command failed to start: {type(error).__name__}: "
                  f"{error} (this is a bug; XARCH_SERVER=off runs commands without the server)",
                  file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


_PR_SET_PDEATHSIG = 1  # prctl(2)


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _place(received: list[int], targets: list[int], cwd: int) -> None:
    """Give each RECEIVED descriptor its number in the client (TARGETS), enter the working folder
    CWD, and close every other descriptor (the server's and the relay's: its socket and folder)."""
    os.fchdir(cwd)
    base = max(targets) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in received]  # out of the targets' way
    keep = set(moved)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target)  # inheritable, as the client's were
        os.close(fd)


def _main(entry: Callable[[], None]) -> int:
    """Run ENTRY as the interpreter runs a script, and its exit code (SystemExit's rules)."""
    from xarch.server import client

    client.inside_server = True
    try:
        entry()
        status: Any = 0
    except SystemExit as exit_:
        status = exit_.code
    # What the interpreter does at exit, which os._exit skips: its exit functions (weakref.finalize
    # among them), then SystemExit's rules for the code.
    import atexit

    atexit._run_exitfuncs()  # the interpreter's own exit step; no public name exists for it
    if status is None:
        return 0
    if isinstance(status, int):
        return status & 0xFF
    print(status, file=sys.stderr)
    return 1


def _forget_environment() -> None:
    """Drop what loaded modules read from the server's environment and kept: plumbum's copy of it
    (commands it runs get that copy), tempfile's folder ($TMPDIR), the C library's time zone ($TZ)."""
    import tempfile

    tempfile.tempdir = None
    time.tzset()
    machines = sys.modules.get("plumbum.machines.local")
    if machines is not None:
        machines.local.env.clear()
        machines.local.env.update(dict(os.environ))


def _set_signals(ignored: int, blocked: int) -> None:
    """The client's dispositions: what it ignored stays ignored (and so for the steps it starts);
    SIGINT raises KeyboardInterrupt; every other signal's action is the default."""
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP) or signum >= 64:
            continue
        if ignored & (1 << (signum - 1)):
            signal.signal(signum, signal.SIG_IGN)
        elif signum == signal.SIGINT:
            signal.signal(signum, signal.default_int_handler)
        else:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, {signum for signum in signal.valid_signals()
                                                 if signum < 64 and blocked & (1 << (signum - 1))})


def _streams(kinds: list[list[Any]]) -> tuple[TextIO, TextIO, TextIO]:
    """sys.stdin, sys.stdout and sys.stderr over descriptors 0-2, made as the interpreter made the
    client's at start-up (CPython's create_stdio): KINDS' encodings and error handlers; an
    unbuffered stream (python -u) writes through; else stdout is line-buffered on a terminal and
    stderr always."""
    def text(fd: int, kind: list[Any]) -> TextIO:
        encoding, errors, unbuffered = kind
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        if fd == 0:
            layer: Any = io.BufferedReader(raw)
        else:
            layer = raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(layer, encoding=encoding, errors=errors,
                                line_buffering=not unbuffered and fd != 0 and (fd == 2 or raw.isatty()),
                                write_through=bool(unbuffered) and fd != 0)

    return text(0, kinds[0]), text(1, kinds[1]), text(2, kinds[2])
