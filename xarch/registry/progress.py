"""What the registry code reports per blob (BlobProgress), and the display a command gives it:
xarch.progress.Reporter.transfers (bars on a terminal, lines otherwise) or QuietProgress."""

from __future__ import annotations

from typing import IO, Protocol


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
