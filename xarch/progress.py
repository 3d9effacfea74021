"""Progress for long work: rich bars on a terminal, plain lines in CI and pipes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Reporter:
    """Where build steps say what they do; quiet=True keeps only errors."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self._progress: Progress | None = None

    def info(self, message: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(message, markup=False)
        else:
            self.console.print(message, markup=False)

    def detail(self, message: str) -> None:
        if self.verbose:
            self.info(message)

    @contextmanager
    def tasks(self) -> Iterator[TaskBoard]:
        if self.quiet or not interactive():
            yield TaskBoard(None, self)
            return
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            self._progress = progress
            try:
                yield TaskBoard(progress, self)
            finally:
                self._progress = None


class TaskBoard:
    """Counted tasks: a bar each on a terminal, a line per finished unit otherwise."""

    def __init__(self, progress: Progress | None, reporter: Reporter) -> None:
        self.progress = progress
        self.reporter = reporter
        self._names: dict[int, str] = {}
        self._counter = 0

    def add(self, description: str, total: int) -> int:
        if self.progress is not None:
            return int(self.progress.add_task(description, total=total))
        self._counter += 1
        self._names[self._counter] = description
        return self._counter

    def advance(self, task: int, note: str = "") -> None:
        if self.progress is not None:
            self.progress.advance(TaskID(task))
        elif note:
            self.reporter.info(f"{self._names.get(task, '')}: {note}")
