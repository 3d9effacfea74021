"""Download locked .debs into the content-addressed store, in parallel, verified.

A package already in the store (and still matching its sha256) costs no network at all.
A download enters the store only once its sha256 matches the lock (Store.put_chunks checks before the rename).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from xarch.oci.store import DigestMismatch, Store
from xarch.progress import interactive
from xarch.sources.debian import http
from xarch.sources.debian.errors import FetchError
from xarch.sources.debian.lock import LockedPackage

DEFAULT_JOBS = 4


def fetch_packages(packages: Iterable[LockedPackage], base_url: str | Callable[[LockedPackage], str],
                   store: Store,
                   jobs: int = DEFAULT_JOBS, say: Callable[[str], None] | None = None,
                   show_bar: bool | None = None) -> dict[str, Path]:
    """Ensure every package is in STORE; returns sha256 -> stored path.

    BASE_URL is the archive root (DebianSource.base_url()) or, for several archives,
    lock.mirror_of(sources), which picks it by the package's suite. The progress bar is shown
    on a terminal (xarch.progress.interactive), else one line per download goes to SAY
    (Reporter.info fits) or to stderr. Sizes are bytes; sha256 are 64 hex digits.

    Raises FetchError (exit 4) when a download is larger than its locked size or its sha256
    differs (nothing is stored), DownloadError (exit 4) when the mirror fails past the
    retries (of several such failures the first by message, saying how many more), and
    LockError (exit 2) when BASE_URL has no archive for a package's suite.
    """
    unique = {p.sha256: p for p in packages}
    missing = [p for sha, p in sorted(unique.items(), key=lambda kv: kv[1].name) if not store.verified(sha)]
    if missing:
        url_of = base_url if callable(base_url) else (lambda _pkg: base_url)
        _download_all(missing, url_of, store, jobs, say, show_bar)
    return {sha: store.path(sha) for sha in unique}


def _download_all(missing: list[LockedPackage], base_url: Callable[[LockedPackage], str], store: Store,
                  jobs: int, say: Callable[[str], None] | None, show_bar: bool | None) -> None:
    if show_bar is None:
        show_bar = interactive()
    line = say or (lambda message: print(message, file=sys.stderr, flush=True))
    total = sum(p.size for p in missing)
    bar: AbstractContextManager[Progress | None] = (
        Progress(TextColumn("fetching .debs"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                 console=Console(stderr=True, emoji=False), transient=True)
        if show_bar else nullcontext(None)
    )
    with bar as progress:
        task = progress.add_task("fetch", total=total) if progress else None

        def advance(count: int) -> None:
            if progress is not None and task is not None:
                progress.advance(task, count)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(_download, p, base_url, store, advance): p for p in missing}
            errors: list[FetchError] = []
            for future in as_completed(futures):
                pkg = futures[future]
                try:
                    future.result()
                except FetchError as exc:
                    errors.append(exc)
                    continue
                if progress is None:
                    line(f"fetched {pkg.label} {pkg.size} bytes")
            if errors:
                # Every failure was already kept out of the store; report the first by name, as
                # the kind it is (a DownloadError keeps its network exit code).
                first = min(errors, key=str)
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                raise type(first)(f"{first}{more}")


def _download(pkg: LockedPackage, base_url: Callable[[LockedPackage], str], store: Store,
              advance: Callable[[int], None]) -> None:
    url = f"{base_url(pkg).rstrip('/')}/{pkg.filename}"

    def counted() -> Iterable[bytes]:
        received = 0
        for chunk in http.stream(url):
            received += len(chunk)
            if received > pkg.size:
                raise FetchError(f"{pkg.label} from {url}: larger than the locked {pkg.size} bytes; "
                                 "not stored")
            advance(len(chunk))
            yield chunk

    try:
        store.put_chunks(counted(), pkg.sha256, what=f"{pkg.label} from {url}")
    except DigestMismatch as exc:
        raise FetchError(f"{exc}; the mirror's file differs from xarch.lock, nothing was stored") from None
