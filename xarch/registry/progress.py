"""Per-blob transfer progress: a rich bar on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import sys
from typing import IO, Protocol

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn


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


class LineProgress:
    """One line per blob when it is done: logs and CI read these, a bar would be noise there."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def start(self, label: str, total: int) -> None:
        """Prints nothing: only the finished blob gets a line."""
        pass

    def advance(self, label: str, amount: int) -> None:
        """Prints nothing: only the finished blob gets a line."""
        pass

    def finish(self, label: str, note: str) -> None:
        """Print `LABEL: NOTE` on the stream."""
        print(f"{label}: {note}", file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to stop."""
        pass


class RichProgress:
    """One rich progress bar per blob (bytes, speed) on a terminal STREAM."""

    def __init__(self, stream: IO[str]):
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=Console(file=stream), transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.bars.start()

    def start(self, label: str, total: int) -> None:
        """Add a bar for LABEL of TOTAL bytes."""
        self.tasks[label] = self.bars.add_task(label, total=total)

    def advance(self, label: str, amount: int) -> None:
        """Move LABEL's bar by AMOUNT bytes (a label never started is ignored)."""
        if label in self.tasks:
            self.bars.advance(self.tasks[label], amount)

    def finish(self, label: str, note: str) -> None:
        """Fill LABEL's bar and append NOTE (a bar is made if LABEL never started)."""
        task = self.tasks.get(label)
        if task is None:
            task = self.tasks[label] = self.bars.add_task(label, total=1)
        self.bars.update(task, description=f"{label} {note}", completed=self.bars.tasks[task].total)

    def close(self) -> None:
        """Stop the live display, leaving the finished bars on screen."""
        self.bars.stop()


def progress_for(stream: IO[str] | None = None, quiet: bool = False) -> BlobProgress:
    """The right progress display for STREAM (stderr by default)."""
    if quiet:
        return QuietProgress()
    stream = stream or sys.stderr
    return RichProgress(stream) if stream.isatty() else LineProgress(stream)
