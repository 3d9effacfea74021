"""A real, signed apt repository built by the tests and served on 127.0.0.1.

Packages are made with `dpkg-deb --build`, indexed with `apt-ftparchive`, signed with a
throwaway gpg key (its own GNUPGHOME in a temporary folder) and served by an
`http.server` thread that fixtures start and stop. Hostile .debs that dpkg-deb refuses
to build (escaping paths, device nodes) are written by `raw_deb`.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import lzma
import re
import shutil
import socket
import subprocess
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from xarch.oci.store import Store

SUITE = "stable"
ARCHES = ("amd64", "arm64")


@dataclass
class FixturePackage:
    name: str
    version: str = "1.0"
    arch: str = "all"
    fields: dict[str, str] = field(default_factory=dict)  # extra control fields
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content (mode 0644, 0755 in bin/)
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> target
    scripts: dict[str, str] = field(default_factory=dict)  # maintainer script name -> body
    conffiles: list[str] = field(default_factory=list)


def build_deb(pkg: FixturePackage, workdir: Path, out_dir: Path) -> Path:
    """One .deb made by dpkg-deb from PKG (root-owned, xz-compressed data)."""
    root = workdir / f"{pkg.name}_{pkg.version}_{pkg.arch}"
    if root.exists():
        shutil.rmtree(root)
    (root / "DEBIAN").mkdir(parents=True)
    control = {
        "Package": pkg.name, "Version": pkg.version, "Architecture": pkg.arch,
        "Maintainer": "xarch tests <tests@example.invalid>", **pkg.fields,
        "Description": f"fixture package {pkg.name}\n made by tests/support/aptrepo.py",
    }
    (root / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    for name, body in pkg.scripts.items():
        script = root / "DEBIAN" / name
        script.write_text(body)
        script.chmod(0o755)
    if pkg.conffiles:
        (root / "DEBIAN" / "conffiles").write_text("".join(f"/{c}\n" for c in pkg.conffiles))
    for path, content in pkg.files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o755 if "/bin/" in f"/{path}" else 0o644)
    for path, link in pkg.symlinks.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(link)
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"{pkg.name}_{pkg.version}_{pkg.arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def raw_deb(path: Path, name: str, members: list[tarfile.TarInfo], contents: dict[str, bytes] | None = None,
            version: str = "1.0", arch: str = "all") -> Path:
    """A .deb written member by member, for content dpkg-deb would refuse to pack."""
    control = f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nDescription: hostile\n".encode()
    control_tar = io.BytesIO()
    with tarfile.open(fileobj=control_tar, mode="w:gz") as tar:
        info = tarfile.TarInfo("./control")
        info.size = len(control)
        tar.addfile(info, io.BytesIO(control))
    data_tar = io.BytesIO()
    with tarfile.open(fileobj=data_tar, mode="w:xz") as tar:
        for info in members:
            payload = (contents or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    path.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.gz", control_tar.getvalue()),
                          ("data.tar.xz", data_tar.getvalue())]))
    return path


def _stop_gpg_agents(homes: list[Path]) -> None:
    """gpg starts an agent per GNUPGHOME that outlives the test run; stop each one at exit."""
    for home in homes:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


_HOMES: list[Path] = []
atexit.register(_stop_gpg_agents, _HOMES)


class GpgKey:
    """A throwaway signing key in its own GNUPGHOME (its gpg-agent is stopped when the tests end)."""

    def __init__(self, home: Path, uid: str = "xarch test archive <archive@example.invalid>",
                 expire: str = "never") -> None:
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        _HOMES.append(home)
        self._gpg("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
        listing = self._gpg("--with-colons", "--list-secret-keys").stdout.decode()
        fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
        self.fingerprint = fingerprints[0]

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--yes", *args],
                              check=True, capture_output=True)

    def export(self, keyring: Path) -> Path:
        """The public key as a binary keyring, the form gpgv and apt read."""
        keyring.write_bytes(self._gpg("--export", self.fingerprint).stdout)
        return keyring

    def clearsign(self, source: Path, target: Path) -> None:
        self._gpg("--pinentry-mode", "loopback", "--passphrase", "", "--local-user", self.fingerprint,
                  "--digest-algo", "SHA256", "--clearsign", "--output", str(target), str(source))


class AptRepo:
    """A repository folder: pool/ with the .debs, dists/<suite>/ with signed indexes."""

    def __init__(self, root: Path, key: GpgKey) -> None:
        self.root = root
        self.key = key
        (root / "pool" / "main").mkdir(parents=True, exist_ok=True)

    def add(self, deb: Path) -> None:
        shutil.copy2(deb, self.root / "pool" / "main" / deb.name)

    def publish(self, suite: str = SUITE, arches: tuple[str, ...] = ARCHES, valid_until: str | None = None,
                extra_release: str = "") -> None:
        dist = self.root / "dists" / suite
        for arch in arches:
            folder = dist / "main" / f"binary-{arch}"
            folder.mkdir(parents=True, exist_ok=True)
            # --arch ARCH lists ARCH and all packages, like the Debian archive's indexes.
            text = subprocess.run(["apt-ftparchive", "--arch", arch, "packages", "pool"], cwd=self.root,
                                  check=True, capture_output=True).stdout
            (folder / "Packages").write_bytes(text)
            (folder / "Packages.xz").write_bytes(lzma.compress(text))
        options = {
            "Origin": "xarch-tests", "Suite": suite, "Codename": suite, "Components": "main",
            "Architectures": " ".join(arches),
        }
        args = []
        for key, value in options.items():
            args += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
        release = subprocess.run(["apt-ftparchive", *args, "release", str(dist)], check=True,
                                 capture_output=True).stdout
        if valid_until:
            # apt-ftparchive only computes Valid-Until from now (ValidTime); a fixed one
            # in the past is inserted after Date, before signing.
            lines = release.decode().splitlines(keepends=True)
            at = next(i for i, line in enumerate(lines) if line.startswith("Date:")) + 1
            release = "".join(lines[:at] + [f"Valid-Until: {valid_until}\n"] + lines[at:]).encode()
        (dist / "Release").write_bytes(release + extra_release.encode())
        (dist / "InRelease").unlink(missing_ok=True)
        self.key.clearsign(dist / "Release", dist / "InRelease")


@dataclass
class Faults:
    """What a RepoServer does wrong on purpose: connections it cuts, Range it ignores.

    drops: path suffix -> how many more GETs of a matching file to cut short: the server sends
    the whole Content-Length header, half the body, and closes the connection.
    ranges: answer `Range: bytes=N-` with 206 and the rest; False answers 200 with the whole body.
    seen: (path, Range header or None, status) of every file GET, in order.
    after_drop: called with the file's path once a connection to it was cut (e.g. to change it).
    """

    drops: dict[str, int] = field(default_factory=dict)
    ranges: bool = True
    seen: list[tuple[str, str | None, int]] = field(default_factory=list)
    after_drop: Callable[[Path], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_drop(self, path: str) -> bool:
        with self.lock:
            for suffix, left in self.drops.items():
                if path.endswith(suffix) and left > 0:
                    self.drops[suffix] = left - 1
                    return True
        return False


class RepoServer:
    """http.server on 127.0.0.1 (an ephemeral port) serving DIRECTORY, in a thread.

    With FAULTS the files are served by a handler that cuts connections and honours Range
    as FAULTS says (the stdlib handler knows no Range).
    """

    def __init__(self, directory: Path, faults: Faults | None = None) -> None:
        handler = partial(_FaultyHandler if faults else _QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.requests: list[str] = []
        self.faults = faults
        self.httpd.requests_seen = self.requests  # type: ignore[attr-defined]
        self.httpd.faults = faults  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        self.server.requests_seen.append(self.path)  # type: ignore[attr-defined]


class _FaultyHandler(_QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        faults: Faults = self.server.faults  # type: ignore[attr-defined]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            super().do_GET()
            return
        body = path.read_bytes()
        asked = self.headers.get("Range")
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if faults.ranges and match and int(match.group(1)) < len(body):
            start, status = int(match.group(1)), 206
        part = body[start:]
        faults.seen.append((self.path, asked, status))
        self.send_response(status)
        self.send_header("Content-Length", str(len(part)))
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()[:16]}"')
        if faults.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Connection", "close")
        self.end_headers()
        if faults.take_drop(self.path):
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the drop: fewer bytes than Content-Length
            if faults.after_drop is not None:
                faults.after_drop(path)
        else:
            self.wfile.write(part)
        self.close_connection = True


def stored_blobs(store: Store) -> list[str]:
    """The digests in STORE (to check that a failure stored nothing)."""
    folder = store.root / "sha256"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _lib(name: str, version: str, arch: str) -> FixturePackage:
    triplet = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[arch]
    return FixturePackage(name, version, arch, {"Multi-Arch": "same"},
                          files={f"usr/lib/{triplet}/libfake.so.1": f"{name} {version} {arch}\n".encode()})


def fixture_packages() -> list[FixturePackage]:
    """The archive the resolver, fetch and install tests work on."""
    pkgs: list[FixturePackage] = []
    for arch in ARCHES:
        pkgs += [_lib("libfake1", "1.0", arch), _lib("libfake1", "2.0", arch)]
        pkgs.append(FixturePackage(
            "app", "1.0", arch,
            {"Pre-Depends": "prelib", "Depends": "libfake1 (>= 1.5), mta-virtual | fallback-mta",
             "Recommends": "recommended-pkg"},
            files={"usr/bin/app": f"#!/bin/sh\necho app {arch}\n".encode(),
                   "bin/app-legacy": b"#!/bin/sh\necho legacy\n",
                   "etc/app.conf": b"listen 8080\n"},
            symlinks={"usr/bin/app-link": "app"},
            scripts={"postinst": "#!/bin/sh\ntouch /tmp/xarch-fixture-postinst-ran\n",
                     "prerm": "#!/bin/sh\nexit 0\n"},
            conffiles=["etc/app.conf"],
        ))
        pkgs.append(FixturePackage("interp", "3.0", arch, {"Multi-Arch": "allowed"},
                                   files={"usr/bin/interp": b"interp\n"}))
        pkgs.append(FixturePackage("plain", "1.0", arch, files={"usr/bin/plain": b"plain\n"}))
    pkgs.append(FixturePackage("armonly", "1.0", "arm64", files={"usr/share/armonly": b"arm\n"}))
    pkgs += [
        FixturePackage("prelib", "1.0", files={"usr/share/prelib/data": b"pre\n"}),
        FixturePackage("mail-agent", "1.0", fields={"Provides": "mta-virtual"}),
        FixturePackage("fallback-mta", "1.0"),
        FixturePackage("recommended-pkg", "1.0"),
        FixturePackage("pyrt", "1.0"),
        FixturePackage("pyrt-alt", "5.0", fields={"Provides": "pyrt (= 2.0)"}),
        FixturePackage("py-tool", "1.0", fields={"Depends": "pyrt"}),
        FixturePackage("vapi-old", "1.0", fields={"Provides": "vapi (= 1)"}),
        FixturePackage("vapi-new", "1.0", fields={"Provides": "vapi (= 3)"}),
        FixturePackage("vapi-any", "1.0", fields={"Provides": "vapi"}),
        FixturePackage("needs-vprov", "1.0", fields={"Depends": "vapi (>= 2)"}),
        FixturePackage("tool-user", "1.0", fields={"Depends": "interp:any"}),
        FixturePackage("bad-any", "1.0", fields={"Depends": "plain:any"}),
        FixturePackage("ess-base", "1.0", fields={"Essential": "yes"}, files={"usr/share/ess": b"e\n"}),
        FixturePackage("broken-missing", "1.0", fields={"Depends": "does-not-exist"}),
        FixturePackage("broken-version", "1.0", fields={"Depends": "libfake1 (>= 9)"}),
        FixturePackage("conflicter", "1.0", fields={"Conflicts": "prelib"}),
        FixturePackage("ca-certificates", "1.0", files={
            "usr/share/ca-certificates/mozilla/Beta_Root.crt": b"-----BEGIN CERTIFICATE-----\nBBBB\n"
                                                                b"-----END CERTIFICATE-----",
            "usr/share/ca-certificates/mozilla/Alpha_Root.crt": b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                                 b"-----END CERTIFICATE-----\n",
        }, scripts={"postinst": "#!/bin/sh\nupdate-ca-certificates\n"}),
        FixturePackage("tzdata", "1.0", files={"usr/share/zoneinfo/Etc/UTC": b"TZif2 fake\n"}),
        FixturePackage("base-passwd", "1.0", files={
            "usr/share/base-passwd/passwd.master": b"root:*:0:0:root:/root:/bin/sh\n",
            "usr/share/base-passwd/group.master": b"root:*:0:\nshadow:*:42:\n",
        }),
    ]
    return pkgs
