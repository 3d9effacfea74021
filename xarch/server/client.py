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
from typing import TYPE_CHECKING, Any

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
    it did not answer within wire.HANDSHAKE seconds (stopped, say), or the command is not one it
    serves. Once the server has started the command, the answer is its exit code (70 if the
    server went away before the command ended)."""
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
    try:
        for fd in (0, 1, 2):
            # Before any descriptor is opened here: a closed stream's number would be taken by it
            # and passed on as that stream. A closed one cannot be passed: the command runs here.
            os.fstat(fd)
    except OSError:
        return None
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        return None  # started with one closed (its number reused since): the command runs here
    inherited = _inherited()  # before this opens any (`--secret src=/dev/fd/5`, `<(…)`: the command's too)
    if inherited is None:
        return None
    sock = _connect(folder)
    if sock is None:
        return None
    with sock:
        return _run(sock, inherited)


def _inherited() -> list[int] | None:
    """The descriptors above 2 this process holds (from its parent: nothing here has opened one
    yet), which a command may name (/dev/fd/N); None when there are more than wire.MAX_INHERITED."""
    from xarch.server.wire import MAX_INHERITED

    numbers = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.fstat(fd)  # (the listing's own descriptor, closed since, is not one)
            except OSError:
                continue
            numbers.append(fd)
    return sorted(numbers) if len(numbers) <= MAX_INHERITED else None


def _connect(folder: Path) -> socket.socket | None:
    import socket
    import struct

    from xarch.server.context import SOCKET_NAME, private_folder
    from xarch.server.wire import HANDSHAKE, address

    folder_fd = private_folder(folder)
    if folder_fd is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.settimeout(HANDSHAKE)  # a stopped server's full backlog blocks connect(2)
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


def _run(sock: socket.socket, inherited: list[int]) -> int | None:
    """The request, then: None when refused, unanswered or not started; else the command's exit code.

    The streams and working folder are sent only once the server said "ready": a request left
    unread in a stopped server's queue holds no descriptor of this process (a pipe it held open
    would keep `xarch build | tee` waiting). The command starts only after the server said
    "running": before that, nothing ran, and the command runs here instead (never twice)."""
    from xarch.server.context import carried, facts
    from xarch.server.wire import receive, send

    try:
        send(sock, {"facts": facts(), "carried": carried()})
        if _answer(sock, receive) != "ready":  # within wire.HANDSHAKE seconds (the socket's timeout)
            return None  # refused (or stopping)
        sock.settimeout(None)  # the server is awake: from here it answers, or ends the connection
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # unanswered in time, gone, or the working folder removed: run it here
    try:
        send(sock, {"go": True, "fds": inherited}, [0, 1, 2, cwd, *inherited])
        if _answer(sock, receive) != "running":
            return None
    except OSError:
        return None
    finally:
        os.close(cwd)
    _forward_signals(sock)
    return _wait(sock)


def _answer(sock: socket.socket, receive: Any) -> str | None:
    """The server's next answer: "ready", "running", "refused" (None at the end of the connection)."""
    reply, fds = receive(sock)
    for fd in fds:
        os.close(fd)
    if reply is None:
        return None
    return next((key for key in ("ready", "running", "refused") if key in reply), "refused")


def _forward_signals(sock: socket.socket) -> None:
    """Pass FORWARDED signals (those this process does not ignore) to the command from now on."""
    from xarch.server.wire import send

    def forward(signum: int, frame: object) -> None:
        try:
            send(sock, {"signal": signum})
        except OSError:
            pass

    for signum in FORWARDED:
        # What this process ignores, so does the command; but SIGTERM, which xarch's own handler
        # takes whatever the parent ignored (xarch.cli.main).
        if signum == signal.SIGTERM or signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, forward)


def _wait(sock: socket.socket) -> int:
    from xarch.server.wire import next_message

    while True:
        message = next_message(sock)
        if message is None:
            print("xarch: internal error: the build server stopped before the command ended",
                  file=sys.stderr)
            return 70
        code = message.get("exit")
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
            signum = message.get("signal")
            if isinstance(signum, int) and code == 128 + signum and signum in signal.valid_signals():
                _end_by(signum)  # as the command ended: a shell, or a parent's waitpid, sees the same
            return code


def _end_by(signum: int) -> None:
    """End this process by signal SIGNUM, with its default action; returns if that does not end it."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    except (OSError, ValueError):
        pass
