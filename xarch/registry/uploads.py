"""Where unfinished chunked uploads stand, so the next `xarch push` continues them.

A push that dies mid-blob (the machine, the network, the registry) leaves the registry
holding the bytes it accepted under an upload URL. Remembering that URL lets the next run
ask the registry how far it got (GET → Range) and send only the rest of that blob.
One small JSON file per (registry, repository, blob), under $XARCH_CACHE/uploads.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from xarch.oci.store import default_root


class UploadJournal:
    """Upload URLs of unfinished chunked uploads, one 0600 JSON file per (host, repository, digest)
    under ROOT (default $XARCH_CACHE/uploads). Never raises: a cache it cannot read or write only
    loses resumption across runs.
    """

    def __init__(self, root: Path | None = None):
        self.root = root or default_root() / "uploads"

    def _path(self, host: str, repository: str, digest: str) -> Path:
        key = hashlib.sha256(f"{host}/{repository}@{digest}".encode()).hexdigest()
        return self.root / f"{key}.json"

    def get(self, host: str, repository: str, digest: str) -> str | None:
        """The upload URL remembered for the blob, or None (none, or unreadable)."""
        try:
            entry = json.loads(self._path(host, repository, digest).read_text())
        except (OSError, ValueError):
            return None
        url = entry.get("url") if isinstance(entry, dict) else None
        return url if isinstance(url, str) else None

    def put(self, host: str, repository: str, digest: str, url: str) -> None:
        """Remember URL as where the blob's upload stands (atomic replace; OSError ignored)."""
        path = self._path(host, repository, digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Upload URLs carry the registry's upload state: readable by this user only.
            temporary = path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"host": host, "repository": repository, "digest": digest, "url": url}, handle)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only cache only costs the ability to resume across runs

    def drop(self, host: str, repository: str, digest: str) -> None:
        """Forget the blob's upload (it finished, or the registry forgot it)."""
        self._path(host, repository, digest).unlink(missing_ok=True)
