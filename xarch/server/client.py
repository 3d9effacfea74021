"""The client side of the build server: hand this `xarch build` or `xarch push` to a running
`xarch serve`, or say it cannot (None), so the command runs here as it always does.

Only `build` and `push` are handed over (the commands whose start-up is most of a rebuild's or a
re-push's time), and not with `--sign-key`, whose password prompt needs this process's terminal.
`XARCH_SERVER=off` never hands anything over. The cost when no server runs is one lstat.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

from xarch.cachedir import default_root

if TYPE_CHECKING:
    import socket
    from pathlib import Path

SERVED = ("build", "push")
# Signals a terminal or a supervisor sends to end a command: passed on to the served command's
# process group, as a terminal would have sent them to a local command's.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# True in a command's process forked by the server (xarch.server.serve): it never hands itself over.
inside_server = False


def delegate(argv: list[str]) -> int | None:
    """Run ARGV (sys.argv) in the build server and return its exit code, or None when no server
    takes it: none is running, it is not this user's, it refused this process (xarch.server.context),
    or the command is not one it serves. Once the server has started the command, the answer is
    its exit code (70 if the server went away before the command ended)."""
    if inside_server or os.environ.get("XARCH_SERVER") == "off" \
            or argv[1:2] not in ([name] for name in SERVED):
        return None
    if any(arg == "--sign-key" or arg.startswith("--sign-key=") for arg in argv):
        return None
    folder = default_root() / "server"  # (xarch.server.context.server_folder, not loaded yet)
    try:
        os.lstat(folder / "socket")
    except OSError:
        return None  # the common case costs this lstat only: nothing more is loaded
    sock = _connect(folder)
    if sock is None:
        return None
    with sock:
        return _run(sock)


def _connect(folder: Path) -> socket.socket | None:
    import socket
    import struct

    from xarch.server.context import SOCKET_NAME, private_folder
    from xarch.server.wire import address

    folder_fd = private_folder(folder)
    if folder_fd is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address(folder_fd, SOCKET_NAME))
        _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         struct.calcsize("3i")))
    except OSError:
        sock.close()
        return None
    finally:
        os.close(folder_fd)
    if uid != os.geteuid():  # the folder is ours, so this cannot happen; if it does, hand nothing over
        sock.close()
        return None
    return sock


def _run(sock: socket.socket) -> int | None:
    from xarch.server.context import carried, facts
    from xarch.server.wire import receive, send

    try:
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # a removed working folder: the command here says so as it always does
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed standard stream cannot be passed on
        send(sock, {"facts": facts(), "carried": carried()}, [0, 1, 2, cwd])
        reply, _ = receive(sock)
    except OSError:
        return None
    finally:
        os.close(cwd)
    if reply is None or not isinstance(reply.get("running"), int):
        return None  # refused (or stopping): nothing was started
    return _wait(sock)


def _wait(sock: socket.socket) -> int:
    from xarch.server.wire import WireError, receive, send

    def forward(signum: int, frame: object) -> None:
        try:
            send(sock, {"signal": signum})
        except OSError:
            pass

    for signum in FORWARDED:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # what this process ignores, so does the command
            signal.signal(signum, forward)
    while True:
        try:
            message, fds = receive(sock)
        except WireError:
            continue
        except OSError:
            message, fds = None, []
        for fd in fds:
            os.close(fd)
        if message is None:
            print("xarch: internal error: the build server stopped before the command ended",
                  file=sys.stderr)
            return 70
        code = message.get("exit")
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
            return code
