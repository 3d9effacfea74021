"""HTTP GETs of archive files: retried with backoff, resumed with Range, errors that name the URL.

A mirror that drops a connection in the middle of a body is asked again for the rest
(`Range: bytes=N-`, RFC 9110 §14); a server that answers 206 sends the rest, one that
answers 200 sends the whole body again and the bytes already received are skipped. Either
way the caller sees each byte once and verifies the whole (a .deb's sha256 from the lock,
InRelease's signature, a Packages index's hash in Release), so a resume can never let a
wrong byte through. After RETRIES retries the download is one DownloadError (exit 4).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import requests

from xarch.sources.debian.errors import DownloadError
from xarch.websession import without_netrc

TIMEOUT = (15, 120)  # connect, read (seconds)
RETRIES = 4  # after the first attempt; with BACKOFF 0.5 s the waits are 0.5, 1, 2, 4 s
BACKOFF = 0.5  # seconds before the first retry, doubled before each next one
MAX_BACKOFF = 8.0
# Statuses that say "try again later" rather than "no such file".
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The errors of a connection refused, reset or dropped mid-body, and of a read that timed out.
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

_log = logging.getLogger(__name__)
_local = threading.local()
_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)$")


def session() -> requests.Session:
    """One session per thread: requests.Session is not documented as thread-safe."""
    current = getattr(_local, "session", None)
    if current is None:
        current = without_netrc(requests.Session())
        # identity: Range and Content-Length then count the file's own bytes, not a gzip
        # transfer encoding of them (mirrors serve .deb, .xz and InRelease as they are).
        current.headers.update({"User-Agent": "xarch", "Accept-Encoding": "identity"})
        _local.session = current
    return current


def get_bytes(url: str) -> bytes:
    """The whole body of URL (InRelease, a Packages index), with stream()'s retries and resume.
    Raises DownloadError (exit 4) as stream() does."""
    return b"".join(stream(url))


class _Retry(Exception):
    """An attempt that may succeed when repeated: a drop, a timeout, a 5xx or 429."""


def stream(url: str, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The body of URL in chunks, each byte once; the caller verifies what it gets.

    A connection refused, reset or dropped before Content-Length bytes arrived, a read
    timeout, or a status in RETRY_STATUSES is retried up to RETRIES times with exponential
    backoff from BACKOFF seconds; a retry after some bytes arrived asks for the rest with
    Range (and If-Range, so a file that changed meanwhile comes whole). Raises DownloadError
    (exit 4), one line naming URL, on any other status or when the retries are spent.
    """
    received = 0
    validator: str | None = None  # ETag or Last-Modified of the first answer, for If-Range
    failures = 0
    while True:
        headers = {}
        if received:
            headers["Range"] = f"bytes={received}-"
            if validator:
                headers["If-Range"] = validator
        try:
            with session().get(url, headers=headers, timeout=TIMEOUT, stream=True) as response:
                skip = _bytes_to_skip(url, response, received)
                if validator is None:
                    validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
                expected = _expected_end(response, received - skip)
                # urllib3 would raise on a short body and drop the bytes it had buffered with it;
                # read what arrives and compare with Content-Length here, so a resume starts
                # after every byte that did arrive.
                response.raw.enforce_content_length = False
                for data in response.iter_content(chunk):
                    if skip:
                        if len(data) <= skip:
                            skip -= len(data)
                            continue
                        data, skip = data[skip:], 0
                    received += len(data)
                    yield data
                if skip:
                    raise DownloadError(f"cannot fetch {url}: its body is shorter than the {received} bytes "
                                        "an earlier attempt received (the file changed on the mirror)")
                if expected is not None and received < expected:
                    raise _Retry(f"connection closed after {received} of {expected} bytes")
                return
        except (_Retry, *TRANSIENT) as exc:
            failures += 1
            reason = _reason(exc)
            if failures > RETRIES:
                raise DownloadError(f"cannot fetch {url}: {reason} (gave up after {failures} attempts, "
                                    f"{received} bytes received)") from None
            wait = min(BACKOFF * 2 ** (failures - 1), MAX_BACKOFF)
            _log.info("%s: %s; attempt %d of %d in %.1f s from byte %d", url, reason, failures + 1,
                      RETRIES + 1, wait, received)
            time.sleep(wait)
        except requests.RequestException as exc:
            raise DownloadError(f"cannot fetch {url}: {_one_line(exc)}") from None


def _bytes_to_skip(url: str, response: requests.Response, received: int) -> int:
    """How many leading bytes of RESPONSE the caller already has; raises for a status to give up on."""
    status = response.status_code
    if status == 200:
        return received  # the whole body again (no Range support, or If-Range did not match)
    if status == 206 and received:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        start = int(match.group(1)) if match else -1
        if not 0 <= start <= received:
            raise DownloadError(f"cannot fetch {url}: asked for bytes from {received}, the server sent "
                                f"Content-Range {response.headers.get('Content-Range')!r}")
        return received - start
    if status in RETRY_STATUSES:
        raise _Retry(f"HTTP {status}")
    raise DownloadError(f"cannot fetch {url}: HTTP {status}")


def _expected_end(response: requests.Response, offset: int) -> int | None:
    """The byte count the caller should have once RESPONSE (starting at OFFSET) is complete."""
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isascii() and length.isdigit() else None


def _reason(exc: BaseException) -> str:
    """A transient failure in words; urllib3's own text repeats itself in nested tuples."""
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped in the middle of the body"
    if isinstance(exc, requests.Timeout):
        return f"timed out ({_one_line(exc)})"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({_one_line(exc)})"
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
