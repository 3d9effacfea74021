"""Content-addressed store of downloads and blobs, shared by every platform and build.

Layout: $XARCH_CACHE (else $XDG_CACHE_HOME/xarch, else ~/.cache/xarch) / sha256 / <hex>.
A blob enters only after its sha256 has been checked, through a temporary file renamed
into place, so a reader never sees a partial or unverified blob.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from xarch.cachedir import default_root
from xarch.errors import InputError
from xarch.oci.atomic import name_the_path
from xarch.oci.digest import file_sha256, hex_of
from xarch.oci.verified import BlobMismatch, read_verified

CHUNK = 1 << 20


class DigestMismatch(InputError, ValueError):
    """Content whose sha256 is not the one it was asked to have."""


class Store:
    """The content-addressed store: `<root>/sha256/<hex>` holds blobs and downloads whose sha256
    is their name, written atomically and checked when read (read, verified)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else default_root()

    def path(self, sha256: str) -> Path:
        """Where the blob of SHA256 (64 hex digits) lives; it may not exist."""
        return self.root / "sha256" / sha256

    def has(self, sha256: str) -> bool:
        """Whether a file is stored under SHA256 (not checked: use verified or read for that)."""
        return self.path(sha256).is_file()

    def verified(self, sha256: str) -> bool:
        """True when the store holds SHA256 with exactly those bytes. A file that has changed since
        it entered (disk fault, a hand edit) is deleted, so the caller fetches or rebuilds it."""
        path = self.path(sha256)
        try:
            actual = file_sha256(path, CHUNK)
        except FileNotFoundError:
            return False
        if actual == sha256:
            return True
        path.unlink(missing_ok=True)
        return False

    def read(self, digest: str) -> bytes | None:
        """The bytes stored for DIGEST ("sha256:<hex>"), checked; None when absent or corrupt (then
        deleted, so that the rebuild stores it again)."""
        path = self.path(hex_of(digest))
        try:
            return read_verified(path.open("rb"), digest, None, str(path))
        except FileNotFoundError:
            return None
        except BlobMismatch:
            path.unlink(missing_ok=True)
            return None

    def put_chunks(self, chunks: Iterable[bytes], expected_sha256: str | None, what: str = "blob") -> str:
        """Store the concatenated CHUNKS; verify them against EXPECTED_SHA256 first.

        Returns the sha256. On a mismatch nothing enters the store and DigestMismatch
        names WHAT, the expected and the actual digest.
        """
        directory = self.root / "sha256"
        directory.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    hasher.update(chunk)
                    tmp.write(chunk)
            actual = hasher.hexdigest()
            if expected_sha256 is not None and actual != expected_sha256:
                raise DigestMismatch(f"{what}: sha256 is {actual}, expected {expected_sha256}")
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, self.path(actual))
            return actual
        except BaseException as error:
            Path(tmp_name).unlink(missing_ok=True)
            name_the_path(error, directory)
            raise

    def put_bytes(self, data: bytes, expected_sha256: str | None = None, what: str = "blob") -> str:
        """Store DATA (checked against EXPECTED_SHA256 when given); its sha256 in hex. Raises
        DigestMismatch (exit 2, naming WHAT) on a different digest; nothing is stored then."""
        return self.put_chunks([data], expected_sha256, what)

    def put_stream(self, stream: BinaryIO, expected_sha256: str | None = None, what: str = "blob") -> str:
        """Store what STREAM holds, read CHUNK bytes at a time (memory stays flat); as put_bytes."""
        return self.put_chunks(iter(lambda: stream.read(CHUNK), b""), expected_sha256, what)
