"""The build server: load xarch once, then fork for each client (xarch.server).

Three processes per command, each forked from the one before, so that nothing a command does can
reach the server or the next command:

- the server (here) accepts a connection and forks a relay; it loads nothing more, runs nothing,
  and keeps no state but its socket, so every command starts from the same loaded modules;
- the relay (xarch.server.relay) checks the client, forks the command's process, passes on the
  client's signals, and sends its exit code;
- the command's process (xarch.server.command) takes the client's streams, folder, environment,
  umask and signals, and runs `xarch.cli.main.main` as the client would have.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import pkgutil
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO

from xarch.errors import HostError, InputError
from xarch.server.context import SOCKET_NAME, private_folder, server_folder
from xarch.server.log import Log
from xarch.server.relay import relay
from xarch.server.wire import HANDSHAKE, address, receive, send

DEFAULT_IDLE = 900  # seconds without a command after which the server exits


class ServerError(HostError):
    """The server cannot start here: its folder is not private, or another server holds it (exit 3)."""


def preload() -> list[str]:
    """Import every module of xarch (not this package's server side) and the libraries they import,
    so that no command the server forks loads one again. Returns the modules that failed to
    import, as "name: error" (a module whose library is missing fails the same way in a client)."""
    import xarch

    failed = []
    for module in pkgutil.walk_packages(xarch.__path__, "xarch."):
        if module.name.startswith("xarch.server") or module.name.endswith(".__main__"):
            continue  # (a __main__ module runs the command line when imported)
        try:
            importlib.import_module(module.name)
        except Exception as error:  # reported, not fatal: a command needing it fails as it would locally
            failed.append(f"{module.name}: {type(error).__name__}: {error}")
    return failed


@contextlib.contextmanager
def listening(cache_root: Path) -> Iterator[socket.socket]:
    """The server's socket, bound in CACHE_ROOT/server (made 0700 when missing), removed on exit.
    Raises ServerError when the folder is another user's or open to others, or a live server
    holds it; a socket left by a server that died is replaced."""
    folder = server_folder(cache_root)
    with contextlib.suppress(OSError):  # a folder that cannot be made is refused just below
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    folder_fd = private_folder(folder)
    if folder_fd is None:
        raise ServerError(f"{folder}: not a folder of this user's that only it may enter (mode 0700); "
                          "the server will not listen there")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    path = address(folder_fd, SOCKET_NAME)  # (O_PATH descriptors serve as dir_fd too, open(2))
    try:
        try:
            sock.bind(path)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise ServerError(f"{folder / SOCKET_NAME}: cannot listen there: {error.strerror}") from None
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
                if probe.connect_ex(path) == 0:
                    raise ServerError(f"{folder / SOCKET_NAME}: another xarch server is running for "
                                      "this cache (`xarch serve --stop` stops it)") from None
            try:
                os.unlink(SOCKET_NAME, dir_fd=folder_fd)  # left by a server that died
                sock.bind(path)
            except OSError as again:
                raise ServerError(f"{folder / SOCKET_NAME}: cannot listen there: {again.strerror}") from None
        sock.listen(16)
        bound = os.stat(path).st_ino
        owner = os.getpid()
        try:
            yield sock
        finally:
            # Only the server removes it, and only its own (not one a later server bound there).
            if os.getpid() == owner:
                with contextlib.suppress(OSError):
                    if os.stat(path).st_ino == bound:
                        os.unlink(SOCKET_NAME, dir_fd=folder_fd)
    finally:
        sock.close()
        os.close(folder_fd)


def serve(cache_root: Path, idle: float, log_stream: TextIO, entry: Callable[[], None]) -> None:
    """Serve commands for CACHE_ROOT's clients until IDLE seconds pass without one, or SIGTERM,
    SIGINT or `xarch serve --stop`: each runs ENTRY (the console script's main, which reads
    sys.argv) in a process of its own. Writes one line per command (and per refusal) to LOG_STREAM
    (see Log).
    Raises ServerError (see `listening`)."""
    log = Log(log_stream)
    with listening(cache_root) as sock:
        failed = preload()
        from xarch.records import code_fingerprint

        code = code_fingerprint()
        os.chdir("/")  # hold no folder of the caller's (each command gets its client's)
        if threading.active_count() != 1:  # a fork copies one thread: the others' locks would stay held
            raise ServerError("loading xarch started threads; the server cannot fork safely")
        # A server run in the background of a terminal with `stty tostop` would be stopped by its
        # first log line (and every relay with it): such writes go ahead instead (tty(4)).
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        for line in failed:
            log.say(f"not loaded: {line}")
        log.say(f"serving `xarch build` and `xarch push` for {cache_root} (pid {os.getpid()}; "
                  f"exits after {idle:g} s without a command)")
        server = os.getpid()
        _loop(sock, idle, log, lambda conn: relay(conn, code, log, entry, server))


def _loop(sock: socket.socket, idle: float, log: Log, fork_to: Callable[[socket.socket], NoReturn]) -> None:
    """Accept and fork FORK_TO (a relay) per connection until idle or told to stop; reap relays."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    # A signal wakes select at once through this pipe (PEP 475 would resume the wait otherwise),
    # so that `xarch serve --stop` returns when the socket is gone, not a second later.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    relays: set[int] = set()
    last = time.monotonic()
    try:
        while not stopping:
            watched: list[Any] = [sock, wake_r]
            readable, _, _ = select.select(watched, [], [], 1.0)
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            if sock in readable and not stopping:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    conn = None
                if conn is not None:
                    pid = os.fork()
                    if pid == 0:
                        signal.set_wakeup_fd(-1)
                        os.close(wake_r)
                        os.close(wake_w)
                        sock.close()
                        fork_to(conn)
                    conn.close()
                    relays.add(pid)
            while relays:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                relays.discard(pid)
            if relays or sock in readable:
                last = time.monotonic()
            elif time.monotonic() - last > idle:
                log.say(f"no command for {idle:g} s; exiting")
                break
    finally:
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)


def stop_server(cache_root: Path) -> bool:
    """Ask CACHE_ROOT's server to exit, and wait until its socket is gone; False when none is running
    there. Raises InputError for a folder that is not private (see `listening`), ServerError
    (exit 3) when the server does not answer within HANDSHAKE seconds."""
    folder = server_folder(cache_root)
    folder_fd = private_folder(folder)
    if folder_fd is None:
        if folder.exists():
            raise InputError(f"{folder}: not a folder of this user's that only it may enter (mode 0700)")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(HANDSHAKE)
            try:
                sock.connect(address(folder_fd, SOCKET_NAME))
            except TimeoutError:
                raise ServerError(f"{folder / SOCKET_NAME}: the server does not answer (stopped?)") from None
            except OSError:
                return False
            try:
                send(sock, {"stop": True})
                reply, _ = receive(sock)
            except TimeoutError:
                raise ServerError(f"{folder / SOCKET_NAME}: the server does not answer (stopped?)") from None
            if not (reply and reply.get("stopping")):
                return False
        # Said when the socket is gone: `xarch serve --stop; xarch serve` starts the next one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.stat(SOCKET_NAME, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:
                break
            time.sleep(0.02)
        return True
    finally:
        os.close(folder_fd)
