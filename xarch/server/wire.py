"""The messages between an `xarch` client and the build server: one JSON object per packet of a
SOCK_SEQPACKET Unix socket (packets keep their bounds, and file descriptors travel with the
packet that names them, unix(7) SCM_RIGHTS).

client → relay   {"facts": …, "carried": …}
relay → client   {"refused": REASON} | {"ready": true}
client → relay   {"go": true, "fds": [N…]} with fds [stdin, stdout, stderr, working folder, N…]
relay → client   {"running": PID}               (then, and only then, the command starts)
client → relay   {"signal": N}                  (any number, while running)
relay → client   {"exit": CODE}                 (the command's; 128+N when killed by signal N)
client → relay   {"stop": true}                 (xarch serve --stop; the server exits)

Descriptors travel only after "ready", so a request left unread (a stopped server) holds none of
the client's; and a client that never hears "running" knows that nothing ran.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

MAX_MESSAGE = 1 << 20  # 1 MiB: an environment larger than this is not served
# The protocol's limits, one definition for client and relay:
HANDSHAKE = 5.0  # seconds each side waits for the other's next handshake message ("ready", "go")
MAX_INHERITED = 32  # descriptors above 2 a client passes on; with more, it runs the command itself
MAX_FDS = 4 + MAX_INHERITED  # stdin, stdout, stderr, the working folder, and the inherited ones


class WireError(OSError):
    """A message that is not one: cut short, not a JSON object, too many descriptors."""


def address(folder_fd: int, name: str) -> str:
    """The socket's address through the folder's descriptor, so that a cache folder deeper than
    sun_path's 108 bytes still works, and the folder checked is the folder used."""
    return f"/proc/self/fd/{folder_fd}/{name}"


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send MESSAGE (and FDS, if any) as one packet. Raises OSError (EMSGSIZE when too large)."""
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes is over {MAX_MESSAGE}")
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next packet as (message, received fds); (None, []) at the end of the connection.
    Raises WireError for a packet that is not a JSON object (its fds are closed first)."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE + 1, MAX_FDS)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(data) > MAX_MESSAGE:
        _close(fds)
        raise WireError("message cut short")
    if not data and not fds:
        return None, []
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        message = None
    if not isinstance(message, dict):
        _close(fds)
        raise WireError("message is not a JSON object")
    return message, fds


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def next_message(sock: socket.socket) -> dict[str, Any] | None:
    """The next message, its descriptors closed (none is expected once a command runs); None at
    the end of the connection or when reading fails. A packet that is not a message is skipped."""
    while True:
        try:
            message, fds = receive(sock)
        except WireError:
            continue
        except OSError:
            return None
        _close(fds)
        return message
