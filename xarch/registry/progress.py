"""Per-blob transfer progress: a rich bar on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import sys
from typing import IO, Protocol

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn


class BlobProgress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, label: str, amount: int) -> None: ...
    def finish(self, label: str, note: str) -> None: ...
    def close(self) -> None: ...


class QuietProgress:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, label: str, amount: int) -> None:
        pass

    def finish(self, label: str, note: str) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """One line per blob when it is done: logs and CI read these, a bar would be noise there."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, label: str, amount: int) -> None:
        pass

    def finish(self, label: str, note: str) -> None:
        print(f"{label}: {note}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    def __init__(self, stream: IO[str]):
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=Console(file=stream), transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.bars.start()

    def start(self, label: str, total: int) -> None:
        self.tasks[label] = self.bars.add_task(label, total=total)

    def advance(self, label: str, amount: int) -> None:
        if label in self.tasks:
            self.bars.advance(self.tasks[label], amount)

    def finish(self, label: str, note: str) -> None:
        task = self.tasks.get(label)
        if task is None:
            task = self.tasks[label] = self.bars.add_task(label, total=1)
        self.bars.update(task, description=f"{label} {note}", completed=self.bars.tasks[task].total)

    def close(self) -> None:
        self.bars.stop()


def progress_for(stream: IO[str] | None = None, quiet: bool = False) -> BlobProgress:
    """The right progress display for STREAM (stderr by default)."""
    if quiet:
        return QuietProgress()
    stream = stream or sys.stderr
    return RichProgress(stream) if stream.isatty() else LineProgress(stream)
