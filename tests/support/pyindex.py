"""A PEP 503 simple package index on 127.0.0.1 (stdlib http.server), and wheels built for it.

`make_wheel` writes a wheel with zipfile (the wheel spec, PEP 427/491): METADATA, WHEEL with
its tags, entry_points.txt, and a RECORD whose sha256 and sizes are right, so installer's
RECORD check passes unless a test breaks it on purpose. `elf_header(machine)` gives the 64
bytes an ELF shared object starts with (what xarch's ELF check and readelf read), so a
"binary" wheel needs no compiler.

`PackageIndex(folder)` serves FOLDER's `*.whl` files: /simple/ lists projects, /simple/NAME/
links each file with `#sha256=` (PEP 503), /files/NAME serves the bytes. Pages are made from
the folder on every request, so a test adds or swaps a wheel by writing a file.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import struct
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

# e_machine (System V gABI / the psABIs)
MACHINES = {"x86_64": 62, "aarch64": 183}


def elf_header(machine: str) -> bytes:
    """An ELF64 little-endian ET_DYN header for MACHINE ("x86_64", "aarch64")."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SYSV
    return ident + struct.pack("<HHIQQQIHHHHHH", 3, MACHINES[machine], 1, 0, 0, 0, 0, 64, 0, 0, 64, 0, 0)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, tag: str, files: dict[str, bytes],
               requires: tuple[str, ...] = (), console_scripts: dict[str, str] | None = None,
               executable: tuple[str, ...] = ()) -> Path:
    """Write NAME-VERSION-TAG.whl into FOLDER holding FILES (path → bytes); returns its path.
    TAG is `py3-none-any` or e.g. `cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64`."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {item}\n" for item in requires)])
    python, abi, platforms = tag.split("-")
    pure = platforms == "any"
    wheel = "".join([f"Wheel-Version: 1.0\nGenerator: xarch-tests\nRoot-Is-Purelib: {str(pure).lower()}\n",
                     *(f"Tag: {python}-{abi}-{p}\n" for p in platforms.split("."))])
    members = dict(files)
    members[f"{dist_info}/METADATA"] = metadata.encode()
    members[f"{dist_info}/WHEEL"] = wheel.encode()
    if console_scripts:
        lines = "".join(f"{key} = {value}\n" for key, value in sorted(console_scripts.items()))
        members[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if member in executable else 0o100644) << 16  # S_IFREG too
            archive.writestr(info, data)
    return path


class PackageIndex:
    """FOLDER's wheels as a PEP 503 index at `self.url` (http://127.0.0.1:PORT/simple) until close()."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
                self.reply(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self.reply(head=False)

            def reply(self, head: bool) -> None:
                body, kind = index.answer(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", "no-cache")  # the tests change the index between calls
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if not head:
                    self.wfile.write(body or b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.root}/simple"

    def _wheels(self) -> dict[str, list[Path]]:
        projects: dict[str, list[Path]] = {}
        for path in sorted(self.folder.glob("*.whl")):
            projects.setdefault(canonicalize_name(parse_wheel_filename(path.name)[0]), []).append(path)
        return projects

    def answer(self, request: str) -> tuple[bytes | None, str]:
        path = request.split("?", 1)[0]
        if path in ("/simple", "/simple/"):
            links = "".join(f'<a href="/simple/{name}/">{name}</a>\n' for name in self._wheels())
            return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), "text/html"
        match = re.fullmatch(r"/simple/([^/]+)/?", path)
        if match:
            files = self._wheels().get(canonicalize_name(match.group(1)))
            if files is None:
                return None, "text/plain"
            links = "".join(
                f'<a href="/files/{html.escape(p.name)}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()}">'
                f"{html.escape(p.name)}</a>\n" for p in files)
            return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), "text/html"
        match = re.fullmatch(r"/files/([^/]+\.whl)", path)
        if match and (self.folder / match.group(1)).is_file():
            return (self.folder / match.group(1)).read_bytes(), "application/octet-stream"
        return None, "text/plain"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
