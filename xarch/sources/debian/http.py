"""HTTP GETs of archive files, with errors that name the URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import requests

from xarch.sources.debian.errors import FetchError

TIMEOUT = (15, 120)  # connect, read (seconds)
_local = threading.local()


def session() -> requests.Session:
    """One session per thread: requests.Session is not documented as thread-safe."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.headers["User-Agent"] = "xarch"
        _local.session = current
    return current


def get_bytes(url: str) -> bytes:
    try:
        response = session().get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise FetchError(f"cannot fetch {url}: {exc}") from None
    if response.status_code != 200:
        raise FetchError(f"cannot fetch {url}: HTTP {response.status_code}")
    return response.content


def stream(url: str, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The body of URL in chunks; the caller verifies what it gets."""
    try:
        with session().get(url, timeout=TIMEOUT, stream=True) as response:
            if response.status_code != 200:
                raise FetchError(f"cannot fetch {url}: HTTP {response.status_code}")
            yield from response.iter_content(chunk)
    except requests.RequestException as exc:
        raise FetchError(f"cannot fetch {url}: {exc}") from None
