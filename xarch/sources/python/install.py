"""Fetch locked wheels into the store (sha256 checked) and install them into an image tree.

Installing is PyPA's `installer` (pinned in pyproject.toml): it reads the wheel, checks its
RECORD, maps `.data/` schemes, rewrites `#!python` shebangs, generates entry-point scripts
and writes the new RECORD. Nothing of the package runs (no setup.py, no post-install hook),
so no interpreter for the target and no QEMU is needed on any host.

The destination is xarch's own (TreeDestination): files go into the in-memory image tree,
not onto the host's disk, so the host's umask, file system and clock never reach the image:
modes are 0644, or 0755 for what the wheel marks executable and for scripts; owners 0:0;
mtimes the epoch (as every tree entry). It follows installer's SchemeDictionaryDestination
(whose write_script reads modes back from disk) with the same records and RECORD format.

No .pyc files are written: compiling needs the target's CPython version (the host's may
differ) and its bytecode would have to be made reproducible (hash-based pycs). Python
compiles each module in memory at import; a read-only image simply does not cache it.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import sys
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from installer import install
from installer.destinations import WheelDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry
from installer.scripts import Script
from installer.sources import WheelFile
from installer.utils import Scheme, construct_record_file, copyfileobj_with_hashing, fix_shebang

from xarch.errors import InputError, NetworkError
from xarch.oci.store import DigestMismatch, Store
from xarch.oci.tree import Entry, Tree, TreeError
from xarch.sources.debian import http
from xarch.sources.python.config import SITE_PACKAGES, PythonSpec
from xarch.sources.python.resolve import LockedWheel

JOBS = 4
INSTALLER_NAME = b"xarch\n"  # the .dist-info/INSTALLER file (PEP 376)


class WheelFetchError(NetworkError):
    """A wheel could not be downloaded, or the index's file is not the one xarch.lock pins (exit 4)."""


class WheelInstallError(InputError):
    """A wheel is malformed or would write outside its place in the image (exit 2)."""


def fetch_wheels(
    wheels: Iterable[LockedWheel], store: Store, say: Callable[[str], None] | None = None
) -> None:
    """Ensure every wheel is in STORE. A download enters it only after its sha256 matched the lock
    (Store.put_chunks hashes before the rename); a drop is retried and resumed (debian/http.py).

    All failures are reported together as one WheelFetchError (exit 4), the first one's message first.
    """
    unique = {w.sha256: w for w in wheels}
    missing = [w for sha, w in sorted(unique.items(), key=lambda kv: kv[1].name) if not store.verified(sha)]
    if not missing:
        return
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        results = list(pool.map(lambda wheel: _try_download(wheel, store), missing))
    errors = [error for error in results if error is not None]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise type(errors[0])(f"{errors[0]}{more}")
    for wheel in missing:
        (say or (lambda m: print(m, file=sys.stderr)))(f"fetched {wheel.filename}")


def _try_download(wheel: LockedWheel, store: Store) -> Exception | None:
    try:
        _download(wheel, store)
    except (WheelFetchError, NetworkError) as error:
        return error
    return None


def _download(wheel: LockedWheel, store: Store) -> None:
    def counted() -> Iterable[bytes]:
        received = 0
        for chunk in http.stream(wheel.url):
            received += len(chunk)
            if wheel.size is not None and received > wheel.size:
                raise WheelFetchError(
                    f"python: {wheel.url}: larger than the locked {wheel.size} bytes; not stored"
                )
            yield chunk

    try:
        store.put_chunks(counted(), wheel.sha256, what=f"python: {wheel.filename} from {wheel.url}")
    except DigestMismatch as error:
        raise WheelFetchError(
            f"{error}; the index's file differs from xarch.lock, nothing was stored"
        ) from None


@dataclass(frozen=True)
class Layout:
    """Where a python: section puts things in the image (absolute image paths)."""

    site: str  # purelib = platlib
    scripts: str
    data: str
    include: str  # headers go to include/<distribution>
    shebang: str  # the interpreter entry-point scripts run
    venv: str | None = None


def layout(spec: PythonSpec, version: str) -> Layout:
    """The install scheme. `site-packages` with an interpreter in /usr/bin is Debian's
    /usr/local scheme (`/usr/local/lib/python3.N/dist-packages`, on Debian's sys.path);
    another interpreter PREFIX/bin/pythonX gets PREFIX/lib/python3.N/site-packages (CPython's
    posix_prefix). A venv path V gets V/lib/python3.N/site-packages and V/bin, as `python -m venv`."""
    if spec.target != SITE_PACKAGES:
        root = spec.target.rstrip("/")
        return Layout(
            f"{root}/lib/python{version}/site-packages",
            f"{root}/bin",
            root,
            f"{root}/include/site/python{version}",
            f"{root}/bin/python",
            venv=root,
        )
    bindir = posixpath.dirname(spec.interpreter)
    if bindir == "/usr/bin":
        return Layout(
            f"/usr/local/lib/python{version}/dist-packages",
            "/usr/local/bin",
            "/usr/local",
            f"/usr/local/include/python{version}",
            spec.interpreter,
        )
    prefix = posixpath.dirname(bindir) or "/"
    return Layout(
        posixpath.join(prefix, f"lib/python{version}/site-packages"),
        bindir,
        prefix,
        posixpath.join(prefix, f"include/python{version}"),
        spec.interpreter,
    )


class TreeDestination(WheelDestination):
    """installer's destination that writes into an image Tree (see the module docstring)."""

    def __init__(
        self, tree: Tree, scheme_dict: dict[str, str], interpreter: str, origin: str, written: dict[str, str]
    ) -> None:
        self.tree = tree
        self.scheme_dict = scheme_dict
        self.interpreter = interpreter
        self.origin = origin
        self.written = written  # image path → the wheel that wrote it, across one install set

    def _image_path(self, scheme: Scheme, path: str) -> str:
        base = self.scheme_dict[scheme].rstrip("/") or "/"
        full = posixpath.normpath(posixpath.join(base, path))
        if "\x00" in path or not (full + "/").startswith(base.rstrip("/") + "/") or full == base:
            raise WheelInstallError(f"python: {self.origin}: {path!r} lies outside its place {base}")
        return full

    def write_to_tree(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        """Add the wheel file PATH of SCHEME (purelib, scripts...) to the tree, mode 0755 if IS_EXECUTABLE
        else 0644; its RECORD entry (sha256, size in bytes) back. WheelInstallError (exit 2) when it
        lies outside its scheme's folder or another wheel of the set already wrote it.
        """
        full = self._image_path(scheme, path)
        previous = self.written.get(full)
        if previous is not None and previous != self.origin:
            raise WheelInstallError(f"python: {self.origin} and {previous} both install {full}")
        sink = io.BytesIO()
        digest, size = copyfileobj_with_hashing(stream, sink, "sha256")
        try:
            self.tree.add_parents(full)
            self.tree.add(
                Entry(
                    full, "file", 0o755 if is_executable else 0o644, data=sink.getvalue(), origin=self.origin
                )
            )
        except TreeError as error:
            raise WheelInstallError(f"python: {self.origin}: {error}") from None
        self.written[full] = self.origin
        return RecordEntry(path, Hash("sha256", digest), size)

    def write_file(
        self, scheme: Scheme, path: str | object, stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        """installer's hook for one file of the wheel: as write_to_tree, a `#!python` shebang in a
        script rewritten to the image's interpreter (PEP 427 / binary distribution format).
        """
        name = str(path)
        if scheme == "scripts":  # `#!python` in a wheel's scripts is the image's interpreter
            with fix_shebang(stream, self.interpreter) as fixed:
                return self.write_to_tree(scheme, name, fixed, is_executable)
        return self.write_to_tree(scheme, name, stream, is_executable)

    def write_script(self, name: str, module: str, attr: str, section: str) -> RecordEntry:
        """installer's hook for a console or GUI entry point (entry_points.txt): a POSIX launcher script
        NAME calling MODULE:ATTR with the image's interpreter, written to the scripts folder, 0755.
        """
        script_name, data = Script(name, module, attr, section).generate(  # type: ignore[arg-type]
            self.interpreter, "posix"
        )
        return self.write_to_tree(Scheme("scripts"), script_name, io.BytesIO(data), True)

    def finalize_installation(
        self, scheme: Scheme, record_file_path: str, records: Iterable[tuple[Scheme, RecordEntry]]
    ) -> None:
        """installer's last hook: write the wheel's RECORD (at RECORD_FILE_PATH in SCHEME, paths of other
        schemes relative to it) listing RECORDS, as the Recording Installed Projects spec says.
        """
        def prefix_for_scheme(file_scheme: str) -> str | None:
            if file_scheme == scheme:
                return None
            return posixpath.relpath(self.scheme_dict[file_scheme], self.scheme_dict[scheme]) + "/"

        with construct_record_file(list(records), prefix_for_scheme) as record:
            self.write_to_tree(scheme, record_file_path, record, False)


def install_wheels(
    tree: Tree,
    wheels: list[LockedWheel],
    spec: PythonSpec,
    version: str,
    store: Store,
    full_version: str | None = None,
) -> int:
    """Install WHEELS (already in STORE) into TREE in name order; returns how many files were written.

    A venv target also gets pyvenv.cfg and bin/python* links to the interpreter, as `python -m
    venv --without-pip` makes them. Raises WheelInstallError (exit 2) for a wheel whose RECORD
    does not match its files, a malformed wheel, or a path outside its scheme."""
    place = layout(spec, version)
    written: dict[str, str] = {}
    for wheel in sorted(wheels, key=lambda w: w.name):
        origin = f"wheel {wheel.filename}"
        path = store.path(wheel.sha256)
        if not store.verified(wheel.sha256):
            raise WheelInstallError(
                f"python: {wheel.filename} is not in the store (or changed there); build again"
            )
        try:
            with zipfile.ZipFile(path) as archive:
                archive.filename = wheel.filename  # the store names blobs by sha256; tags are here
                source = WheelFile(archive)
                source.validate_record()
                distribution = source.distribution
                scheme_dict = {
                    "purelib": place.site,
                    "platlib": place.site,
                    "scripts": place.scripts,
                    "data": place.data,
                    "headers": f"{place.include}/{distribution}",
                }
                destination = TreeDestination(tree, scheme_dict, place.shebang, origin, written)
                install(source, destination, {"INSTALLER": INSTALLER_NAME})
        except WheelInstallError:
            raise
        except (
            InstallerError,
            ValueError,
            KeyError,
            zipfile.BadZipFile,
            OSError,
            UnicodeDecodeError,
        ) as error:
            detail = " ".join(str(error).split()) or type(error).__name__
            raise WheelInstallError(f"python: {wheel.filename}: not an installable wheel: {detail}") from None
    if place.venv is not None:
        _venv_files(tree, place.venv, spec.interpreter, full_version or version)
    return len(written)


def _venv_files(tree: Tree, root: str, interpreter: str, version: str) -> None:
    home = posixpath.dirname(interpreter)
    config = f"home = {home}\ninclude-system-site-packages = false\nversion = {version}\n"
    tree.add_parents(f"{root}/pyvenv.cfg")
    tree.add(Entry(f"{root}/pyvenv.cfg", "file", 0o644, data=config.encode(), origin="python.target venv"))
    tree.add_parents(f"{root}/bin/python")
    name = posixpath.basename(interpreter)
    tree.add(Entry(f"{root}/bin/python", "symlink", 0o777, linkname=interpreter, origin="python.target venv"))
    for alias in sorted({"python3", name} - {"python"}):
        tree.add(
            Entry(f"{root}/bin/{alias}", "symlink", 0o777, linkname="python", origin="python.target venv")
        )
    if f"{root}/lib64" not in tree:
        tree.add(Entry(f"{root}/lib64", "symlink", 0o777, linkname="lib", origin="python.target venv"))


def wheels_digest(wheels: list[LockedWheel]) -> str:
    """What an image's cache key needs of the wheels of one platform."""
    return hashlib.sha256("".join(sorted(f"{w.sha256} {w.filename}\n" for w in wheels)).encode()).hexdigest()
