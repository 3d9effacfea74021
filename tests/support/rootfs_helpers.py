"""Helpers for build-step tests: busybox root filesystems and a TCP server on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path


def busybox_rootfs(target: Path, busybox: Path) -> Path:
    """A rootfs of one static busybox with /bin/sh -> busybox (its applets found through sh)."""
    (target / "bin").mkdir(parents=True)
    shutil.copy2(busybox, target / "bin" / "busybox")
    (target / "bin" / "sh").symlink_to("busybox")
    return target


def copy_rootfs(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


class PongServer:
    """A TCP server on the host's 127.0.0.1 that answers "pong" and counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.connections += 1
                conn.sendall(b"pong\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
