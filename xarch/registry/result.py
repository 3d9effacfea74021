"""What a push or assemble did (PushResult, TransferStats) and how it is printed (print_result).

Apart from the client and the push code, so that a push replayed from its record
(xarch.cli.pushreplay) reports exactly as a push does without loading requests or click.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from xarch.units import human_size
from xarch.visible import visible


@dataclass
class TransferStats:
    """What a push moved: the summary users see and tests assert on."""

    bytes_sent: int = 0
    bytes_skipped: int = 0
    bytes_mounted: int = 0
    blobs_sent: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    retries: int = 0
    resumed_uploads: int = 0
    restarted_uploads: int = 0
    # Uploads run in parallel threads; `+=` on a shared counter is not atomic.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: int) -> None:
        """Add AMOUNTS ({field name: count or bytes}) to the counters; safe across upload threads."""
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, int]:
        """The counters as {field name: count or bytes}, as `push --json` prints them."""
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_")}


@dataclass
class PushResult:
    """What a push left on the registry: the reference with the pushed digest, the top media type,
    {platform name: manifest digest}, the transfer counters and {attachment digest: "api" | "tag"}.

    For a push record (xarch.cli.pushreplay), not printed: ORIGIN, the `scheme://host` the
    requests went to; AUTHENTICATED, whether any request carried credentials; BLOBS, (digest,
    size in bytes) of every config and layer under what was pushed, once each, in order.
    """

    reference: str  # host/repo:tag@digest of what the tag now names
    digest: str
    media_type: str
    manifests: dict[str, str] = field(default_factory=dict)  # platform name -> manifest digest
    stats: TransferStats = field(default_factory=TransferStats)
    referrers: dict[str, str] = field(default_factory=dict)  # attachment digest -> "api" or "tag"
    origin: str = ""
    authenticated: bool = True
    blobs: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The result as `push --json` prints it: the fields above, the counters flattened in."""
        return {"reference": self.reference, "digest": self.digest, "mediaType": self.media_type,
                "manifests": self.manifests, "referrers": self.referrers, **self.stats.as_dict()}


def print_result(result: PushResult, as_json: bool, verb: str, stream: IO[str] | None = None) -> None:
    """Print what a push or assemble did on STREAM (stdout): with AS_JSON one JSON object
    (PushResult.as_dict), else `VERB reference`, each platform's manifest digest, blob counts and
    sizes, referrers. Platform names come from the layout: control characters are shown escaped."""
    out = stream or sys.stdout
    if as_json:
        out.write(json.dumps(result.as_dict(), sort_keys=True) + "\n")
        return
    stats = result.stats
    lines = [f"{verb} {result.reference}"]
    lines += [f"  {visible(name):<10} {digest}" for name, digest in result.manifests.items()]
    lines.append(f"  blobs: {stats.blobs_sent} sent ({human_size(stats.bytes_sent)}), "
                 f"{stats.blobs_skipped} already there ({human_size(stats.bytes_skipped)}), "
                 f"{stats.blobs_mounted} mounted ({human_size(stats.bytes_mounted)})")
    if result.referrers:
        how = "the referrers API" if set(result.referrers.values()) == {"api"} else "the referrers tag"
        lines.append(f"  referrers: {len(result.referrers)} attached (SBOMs, provenance) through {how}")
    out.write("".join(line + "\n" for line in lines))
