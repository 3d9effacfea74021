"""HTTP GETs of archive files, with errors that name the URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from xarch.sources.debian.errors import FetchError

TIMEOUT = (15, 120)  # connect, read (seconds)
_local = threading.local()


def session() -> requests.Session:
    """One session per thread: requests.Session is not documented as thread-safe."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.headers["User-Agent"] = "xarch"
        # Mirrors drop connections now and then; a retry is safe because every byte
        # is verified against a signed hash before use.
        retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504),
                      allowed_methods=("GET",))
        current.mount("http://", HTTPAdapter(max_retries=retry))
        current.mount("https://", HTTPAdapter(max_retries=retry))
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
