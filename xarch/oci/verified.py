"""The one way xarch reads a blob: hashed and counted as it streams, checked against its descriptor.

Every reader of content-addressed bytes (OCI layouts and oci-archives, docker-archives, the
image cache, registry answers) goes through `VerifiedStream` / `read_verified`, so a blob whose
bytes do not match its descriptor's digest or size is an error wherever it is read, never used.
The checks follow the OCI image spec v1.1, descriptor.md: `digest` is the sha256 of exactly
`size` bytes. A stream fails as soon as it passes `size` bytes (a huge or endless blob is not
read to its end), and at EOF when the count or the sha256 differ.

Descriptor fields come from files a user hands us, so `descriptor_fields` checks their types
before anything trusts them (a size of "12" or 1e400, a digest of 7 or "md5:…").
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import zlib
from typing import IO, Any

from xarch.errors import InputError, XarchError

CHUNK = 1 << 20
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
# RFC 8259 allows any depth; Python's parser recurses. Deeper than this is not an image manifest.
_MAX_JSON_DEPTH = 64


class BlobMismatch(InputError):
    """A blob's bytes differ from its descriptor's digest or size (exit 2; the message names
    the file or archive, and the descriptor's digest)."""


class BadDescriptor(InputError):
    """A descriptor (or other JSON an image is made of) with a missing or wrongly typed field (exit 2)."""


def descriptor_fields(obj: Any, where: str) -> tuple[str, str, int]:
    """(mediaType, digest, size) of descriptor OBJ, each checked: digest `sha256:<64 hex>`, size an
    integer >= 0 (not a bool), platform and annotations objects when present. mediaType may be
    absent (""); raises BadDescriptor naming WHERE."""
    if not isinstance(obj, dict):
        raise BadDescriptor(f"{where}: a descriptor must be a JSON object, not {_kind(obj)}")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str) or not SHA256.fullmatch(digest):
        raise BadDescriptor(f"{where}: descriptor digest {_short(digest)} is not sha256:<64 hex digits>")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadDescriptor(f"{where}: descriptor {digest} has size {_short(size)}, not a whole number >= 0")
    if not isinstance(media_type, str):
        raise BadDescriptor(f"{where}: descriptor {digest} has mediaType {_short(media_type)}, not a string")
    for name in ("platform", "annotations"):  # OCI image spec: both are JSON objects when present
        if name in obj and not isinstance(obj[name], dict):
            raise BadDescriptor(f"{where}: descriptor {digest} has a {name} that is not a JSON object")
    return media_type, digest, size


def json_object(data: bytes, where: str, kinds: tuple[type, ...] = (dict,)) -> Any:
    """DATA parsed as JSON, which must be one of KINDS (default an object); else BadDescriptor.

    BadDescriptor (exit 2) names WHERE.
    """
    value = parse_json(data, where, BadDescriptor)
    if not isinstance(value, kinds):
        wanted = " or ".join("a JSON object" if k is dict else "a JSON array" for k in kinds)
        raise BadDescriptor(f"{where}: {_kind(value)} where {wanted} was expected")
    return value


# No number in an image document needs more digits (a size fits in 20); past Python's own limit
# (4300) json would word it as advice to call sys.set_int_max_str_digits().
_MAX_NUMBER_DIGITS = 100


class _TooLong(ValueError):
    pass


def _whole_number(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_NUMBER_DIGITS:
        raise _TooLong(f"a number of {digits} digits, more than {_MAX_NUMBER_DIGITS}")
    return int(text)


def parse_json(data: bytes | str, where: str, error: type[XarchError] = BadDescriptor) -> Any:
    """DATA (UTF-8) parsed as JSON, for every reader of an image's documents; ERROR naming WHERE, worded
    plainly, when it is not JSON, is nested deeper than 64 levels, or has a number of more than 100 digits.
    """
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not JSON (not UTF-8: {exc.reason} at byte {exc.start})") from None
    if _depth_exceeds(text, _MAX_JSON_DEPTH):
        raise error(f"{where}: JSON nested deeper than {_MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_whole_number)
    except _TooLong as exc:
        raise error(f"{where}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: not JSON ({first_line(exc)})") from None


def _depth_exceeds(text: str, limit: int) -> bool:
    # Brackets inside strings count too: an over-estimate, harmless at this limit.
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class BlobCheck:
    """Hashes and counts the pieces of one blob as they pass (`update`), and raises ERROR (default
    BlobMismatch) once they prove not to be DIGEST of SIZE bytes: at once when they pass SIZE,
    else at `finish()`. DIGEST or SIZE None: not known, not checked (a docker-archive's legacy
    layer.tar has no digest of its own)."""

    def __init__(self, digest: str | None, size: int | None, where: str,
                 error: type[XarchError] = BlobMismatch) -> None:
        self.digest, self.size, self.where, self.error = digest, size, where, error
        self.hasher = hashlib.sha256()
        self.count = 0
        self.finished = False

    def update(self, data: bytes) -> None:
        """Hash and count DATA; ERROR at once when the count passes the descriptor's size."""
        self.hasher.update(data)
        self.count += len(data)
        if self.size is not None and self.count > self.size:
            raise self.error(f"{self.where}: blob {self.digest} does not match its digest or size: "
                             f"more than the descriptor's {self.size} bytes")

    def remaining(self) -> int | None:
        """Bytes still expected (may be < 0 past the end), or None when the size is not known."""
        return None if self.size is None else self.size - self.count

    def finish(self) -> None:
        """At the end of the blob: ERROR when the count or the sha256 differ from the descriptor.
        Idempotent.
        """
        if self.finished:
            return
        self.finished = True
        if self.size is not None and self.count != self.size:
            raise self.error(f"{self.where}: blob {self.digest} does not match its digest or size: "
                             f"{self.count} bytes, the descriptor says {self.size}")
        actual = self.actual
        if self.digest is not None and actual != self.digest:
            raise self.error(f"{self.where}: blob {self.digest} does not match its digest: its bytes hash "
                             f"to {actual}")

    @property
    def actual(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class VerifiedStream:
    """A read-only binary stream over RAW whose bytes pass through a BlobCheck (see there): ERROR
    when they prove not to be DIGEST of SIZE bytes, at the latest when a read returns EOF or on
    `verify()` (which reads what is left). Read errors of RAW (a truncated archive, an I/O error)
    become ERROR too, naming WHERE and DIGEST.
    """

    def __init__(self, raw: IO[bytes], digest: str | None, size: int | None, where: str,
                 error: type[XarchError] = BlobMismatch) -> None:
        self.raw = raw
        self.check = BlobCheck(digest, size, where, error)

    @property
    def count(self) -> int:
        return self.check.count

    def read(self, n: int | None = -1) -> bytes:
        """Up to N bytes (N < 0 or None: all), checked on the way; ERROR when they prove not to match, or
        when RAW cannot be read. EOF runs the final check.
        """
        if n is None or n < 0:
            parts = []
            while piece := self.read(CHUNK):
                parts.append(piece)
            return b"".join(parts)
        left = self.check.remaining()
        if left is not None:  # never read far past the declared end
            n = min(n, left + 1)
        try:
            data = self.raw.read(n)
        except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
            check, reason = self.check, first_line(exc)
            raise check.error(f"{check.where}: blob {check.digest} cannot be read ({reason})") from None
        self.check.update(data)
        if not data and n > 0:
            self.check.finish()
        return data

    def verify(self) -> None:
        """Read the rest and check; raises ERROR on a mismatch."""
        while self.read(CHUNK):
            pass
        self.check.finish()

    def readable(self) -> bool:
        """True: a VerifiedStream is a readable binary stream."""
        return True

    def close(self) -> None:
        """Close RAW (no check: call verify() to check the whole blob)."""
        self.raw.close()

    def __enter__(self) -> VerifiedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_verified(raw: IO[bytes], digest: str, size: int | None, where: str,
                  error: type[XarchError] = BlobMismatch) -> bytes:
    """All of RAW (closed after), once its size and sha256 match; else ERROR naming WHERE and DIGEST."""
    with VerifiedStream(raw, digest, size, where, error) as stream:
        data = stream.read()
        stream.verify()
    return data


def verify_blob(raw: IO[bytes], digest: str, size: int | None, where: str,
                error: type[XarchError] = BlobMismatch) -> None:
    """Stream RAW (closed after) through the hash without keeping it; raises ERROR on a mismatch."""
    with VerifiedStream(raw, digest, size, where, error) as stream:
        stream.verify()


def _kind(value: Any) -> str:
    return {dict: "a JSON object", list: "a JSON array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def first_line(error: BaseException) -> str:
    """The first line of ERROR's text (its type's name when it has none): messages stay one line."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
