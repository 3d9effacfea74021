"""The build server: load xarch once, then fork for each client (xarch.server).

Three processes per command, each forked from the one before, so that nothing a command does can
reach the server or the next command:

- the server accepts a connection and forks a relay; it loads nothing more, runs nothing, and keeps
  no state but its socket, so every command starts from the same loaded modules;
- the relay checks the client (same user, same `facts`, xarch's code unchanged since the server
  started), forks the command's process, passes on the client's signals, and sends its exit code;
- the command's process takes the client's standard streams, working folder, environment,
  umask and signal dispositions, leads a session of its own (no controlling terminal: it cannot
  prompt on the server's), and runs `xarch.cli.main.main` as the client would have.

A relay whose client goes away sends the command's process group SIGTERM, which removes what it
was writing (xarch.cli.main), as a closed terminal's SIGHUP would end a local command.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import fcntl
import importlib
import io
import os
import pkgutil
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeGuard

from xarch.errors import HostError, InputError
from xarch.server.context import SOCKET_NAME, differences, facts, private_folder, server_folder
from xarch.server.wire import WireError, address, next_message, receive, send
from xarch.visible import visible

DEFAULT_IDLE = 900  # seconds without a command after which the server exits
_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})
_GRACE = 10.0  # seconds a command has to end after SIGTERM from a relay whose client went away


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
        _loop(sock, idle, log, lambda conn: _relay(conn, code, log, entry, server))


def _loop(sock: socket.socket, idle: float, log: Log, relay: Callable[[socket.socket], NoReturn]) -> None:
    """Accept and fork RELAY per connection until idle or told to stop; reap relays."""
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
                        relay(conn)
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


def _relay(conn: socket.socket, code: Any, log: Log, entry: Callable[[], None],
           server_pid: int) -> NoReturn:
    """One client's relay (see the module); never returns."""
    try:
        if os.getppid() != server_pid:
            os._exit(0)  # the server died as it forked this: serve nothing
        server = os.pidfd_open(server_pid)  # a handle on it no later process can take
        os.setpgid(0, 0)  # a Ctrl-C in the server's terminal does not reach commands in flight
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        _serve_one(conn, code, log, entry, server)
    except BaseException as error:  # a relay never unwinds into the server's loop
        log.say(f"relay failed: {type(error).__name__}: {error}")
    finally:
        os._exit(0)


def _serve_one(conn: socket.socket, code: Any, log: Log, entry: Callable[[], None], server: int) -> None:
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                    struct.calcsize("3i")))
    if uid != os.geteuid():
        return
    conn.settimeout(HANDSHAKE)  # a client that says nothing does not hold a relay
    try:
        message, fds = receive(conn)
    except WireError as error:
        log.say(f"refused: {error}")
        return
    except OSError:
        return
    if message is None:
        return
    if message.get("stop") is True and not fds:
        signal.pidfd_send_signal(server, signal.SIGTERM)  # before anything that could fail
        log.say("stopped by `xarch serve --stop`")
        with contextlib.suppress(OSError):
            send(conn, {"stopping": True})
        return
    _close(fds)
    reason = _refusal(message, code)
    if reason:
        if reason.startswith("xarch's code"):
            signal.pidfd_send_signal(server, signal.SIGTERM)  # stale: the next command runs in its client
        log.say(f"refused: {reason}")
        with contextlib.suppress(OSError):
            send(conn, {"refused": reason})
        return
    carried = message["carried"]
    try:
        send(conn, {"ready": True})
        conn.settimeout(HANDSHAKE)
        go, fds = receive(conn)
    except OSError:
        return  # gone, or no "go" in time: nothing is started
    listed = go.get("fds") if go is not None else None
    numbers: list[int] = listed if _fd_numbers(listed) else []
    if go is None or go.get("go") is not True or numbers != listed or len(fds) != 4 + len(numbers):
        _close(fds)
        return
    try:
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)  # command → relay: it leads its process group
        go_r, go_w = os.pipe2(os.O_CLOEXEC)  # relay → command: start (the client has its pid)
        relay = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(go_w)
            _command(carried, fds, [0, 1, 2, *numbers], ready_w, go_r, relay, entry)
        os.close(ready_w)
        os.close(go_r)
    finally:
        _close(fds)
    started = False
    try:
        if os.read(ready_r, 1) != b"1":  # signals to its process group reach it from now on
            raise OSError("the command's process ended before it began")  # nothing ran: the client runs it
        os.close(ready_r)
        send(conn, {"running": pid})
        os.write(go_w, b"1")
        started = True
    except OSError:
        pass  # the client is gone: it never heard "running", and nothing ran
    finally:
        os.close(go_w)  # without "1" the command's process exits before running anything
    if not started:
        os.waitpid(pid, 0)
        return
    conn.settimeout(None)
    log.say(f"pid {pid}: {visible(carried['argv'][1])}")  # the command's name only: no argument
    try:
        _watch(conn, pid)
    except BaseException:
        # The relay cannot pass on the client's signals or the exit code any more: the command
        # ends, as it would if its client went away.
        _end(pid)
        raise


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


MAX_INHERITED = 32  # descriptors above 2 a client may pass on (wire.MAX_FDS leaves room for them)


def _fd_numbers(value: Any) -> TypeGuard[list[int]]:
    """Whether VALUE lists the client's inherited descriptor numbers: distinct ints above 2."""
    return (isinstance(value, list) and len(value) <= MAX_INHERITED and len(set(value)) == len(value)
            and all(isinstance(n, int) and not isinstance(n, bool) and 2 < n < 1 << 20 for n in value))


HANDSHAKE = 5.0  # seconds a client has to say "go" after "ready" (its own wait: xarch.server.client)


def _end(pid: int) -> None:
    """SIGTERM to the command's process group, SIGKILL after _GRACE seconds; then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _refusal(message: dict[str, Any], code: Any) -> str:
    """Why this client's command is not served here ("" when it is). Stale code first: a client of
    newer code may send what this server cannot read, and a stale server should stop."""
    from xarch.records import code_fingerprint

    if code_fingerprint.__wrapped__() != code:
        return "xarch's code or the interpreter's libraries changed since the server started"
    carried = message.get("carried")
    if not isinstance(carried, dict):
        return "not a command request"
    argv, env, streams = carried.get("argv"), carried.get("env"), carried.get("streams")
    if not (isinstance(argv, list) and len(argv) >= 2 and all(isinstance(a, str) for a in argv)
            and isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) and "=" not in k
                                              and "\0" not in k + v and k for k, v in env.items())
            and all(isinstance(carried.get(key), int) for key in ("umask", "ignored", "blocked"))
            and isinstance(streams, list) and len(streams) == 3 and all(_stream_kind(s) for s in streams)):
        return "not a command request"
    theirs = message.get("facts")
    differ = differences(facts(), theirs if isinstance(theirs, dict) else {})
    if differ:
        return f"the client's process differs from the server's in: {', '.join(differ)}"
    return ""


def _stream_kind(value: Any) -> bool:
    """Whether VALUE is [encoding, error handler, unbuffered] with an encoding and handler that Python
    knows (codecs' registry)."""
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and isinstance(value[1], str) and isinstance(value[2], bool)):
        return False
    try:
        codecs.lookup(value[0])
        codecs.lookup_error(value[1])
    except LookupError:
        return False
    return True


def _watch(conn: socket.socket, pid: int) -> None:
    """Pass the client's signals to the command's process group until it ends; send its exit code.
    A client that goes away ends the command (SIGTERM, then SIGKILL after _GRACE seconds)."""
    pidfd = os.pidfd_open(pid)
    deadline = None
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        watched: list[Any] = [pidfd, conn] if deadline is None else [pidfd]
        readable, _, _ = select.select(watched, [], [], timeout)
        if pidfd in readable:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                # ended by signal N: the client ends by it too (a shell tells that from exit 128+N)
                ended = {"exit": code} if code >= 0 else {"exit": 128 - code, "signal": -code}
                send(conn, ended)
            os.close(pidfd)
            return
        if not readable:  # the grace period after SIGTERM is over
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            deadline = None
            continue
        message = next_message(conn)
        if message is None:  # the client went away: end the command, as a closed terminal would
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + _GRACE
        elif message.get("signal") in _SIGNALS:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, message["signal"])


def _command(carried: dict[str, Any], fds: list[int], targets: list[int], ready: int, go: int,
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
