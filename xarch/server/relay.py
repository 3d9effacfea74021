"""A relay of the build server (xarch.server.serve forks one per connection): it checks the client
(same user, same `facts`, xarch's code unchanged since the server started), forks the command's
process (xarch.server.command), passes on the client's signals, and sends its exit code.

The handshake (xarch.server.wire) makes the command start only after its client was told so:
a client that left or gave up never has it run twice or behind its back. A relay whose client
goes away, or that fails, ends its command: SIGTERM to its process group, which removes what it
was writing (xarch.cli.main), and SIGKILL after _GRACE seconds.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeGuard

from xarch.server.command import run_command
from xarch.server.context import differences, facts
from xarch.server.log import Log
from xarch.server.wire import HANDSHAKE, MAX_INHERITED, WireError, next_message, receive, send
from xarch.visible import visible

_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})
_GRACE = 10.0  # seconds a command has to end after SIGTERM from a relay whose client went away


def relay(conn: socket.socket, code: Any, log: Log, entry: Callable[[], None],
           server_pid: int) -> NoReturn:
    """One client's relay (see the module): check CONN's client, run its command, pass on its
    signals and exit code. CODE is the server's code fingerprint, SERVER_PID the server. Never returns."""
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
    reason = refusal(message, code)
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
            run_command(carried, fds, [0, 1, 2, *numbers], ready_w, go_r, relay, entry)
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


def _fd_numbers(value: Any) -> TypeGuard[list[int]]:
    """Whether VALUE lists the client's inherited descriptor numbers: distinct ints above 2."""
    return (isinstance(value, list) and len(value) <= MAX_INHERITED and len(set(value)) == len(value)
            and all(isinstance(n, int) and not isinstance(n, bool) and 2 < n < 1 << 20 for n in value))


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


def refusal(message: dict[str, Any], code: Any) -> str:
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
