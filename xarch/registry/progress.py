"""What the registry code reports per blob (BlobProgress), and the display a command gives it:
xarch.progress.Reporter.transfers (bars on a terminal, lines otherwise) or QuietProgress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Protocol

from xarch.units import human_size

if TYPE_CHECKING:
    from xarch.registry.result import TransferStats


class BlobProgress(Protocol):
    """What a push reports per blob. LABEL names one blob (short digest and size); TOTAL and AMOUNT
    are bytes; NOTE says how it ended ("sent 3 MB", "already there, skipped").
    """

    def start(self, label: str, total: int) -> None:
        """A blob of TOTAL bytes starts uploading."""

    def advance(self, label: str, amount: int) -> None:
        """AMOUNT more bytes of the blob LABEL were sent."""

    def finish(self, label: str, note: str) -> None:
        """The blob LABEL is done; NOTE says how (sent, skipped, mounted)."""

    def close(self) -> None:
        """No more blobs: stop any display."""


class QuietProgress:
    """Shows nothing (`--quiet`, or `--json` where stderr must stay clean)."""

    def start(self, label: str, total: int) -> None:
        """Shows nothing."""
        pass

    def advance(self, label: str, amount: int) -> None:
        """Shows nothing."""
        pass

    def finish(self, label: str, note: str) -> None:
        """Shows nothing."""
        pass

    def close(self) -> None:
        """Nothing to stop."""
        pass


def progress_for(stream: IO[str] | None = None, quiet: bool = False) -> BlobProgress:
    """The display of a command's transfers: xarch's one reporter (xarch.progress.Reporter.transfers)
    on STREAM (stderr by default); QuietProgress when QUIET."""
    if quiet:
        return QuietProgress()
    from xarch.progress import Reporter

    return Reporter(stream=stream).transfers()


def short(digest: str) -> str:
    """The first 12 hex digits of DIGEST (`sha256:<hex>`), as progress lines show blobs."""
    return digest.split(":", 1)[-1][:12]


def blob_label(digest: str, size: int) -> str:
    """How progress names a blob: `<12 hex digits> (<size>)`."""
    return f"{short(digest)} ({human_size(size)})"


def show_skipped(stats: TransferStats, blobs: Sequence[tuple[str, int]], progress: BlobProgress) -> None:
    """Count and show BLOBS ((digest, size in bytes)) as skipped: the registry has them under a
    manifest it already holds. A push and a push replayed from its record (xarch.cli.pushreplay)
    both say it this way."""
    stats.add(blobs_skipped=len(blobs), bytes_skipped=sum(size for _, size in blobs))
    for digest, size in blobs:
        progress.finish(blob_label(digest, size), "already there, skipped")
