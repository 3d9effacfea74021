"""Progress for long work: rich bars on a terminal, plain lines in CI and pipes; the one reporter.

Every command reports through a Reporter: what a build does (info/detail), counted tasks
(`tasks()`), a step's output, and bytes moved to and from registries (`transfers()`, which the
registry code sees as xarch.registry.progress.BlobProgress).

Build steps: on a terminal (and not CI) the running step has a line of its own with the last
LIVE_LINES lines of its output under it (rich's live display), and one line stays when it
ends; elsewhere every output line is printed as `[STAGE/PLATFORM] line`, so a CI log reads
like `docker buildx build --progress plain`. `-q` shows neither (a failure still shows the
step's last lines, see xarch.run.steps).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from typing import IO, TYPE_CHECKING, Any

from xarch.visible import visible

# rich loads when something is shown (a quiet build shows nothing until its summary): its
# progress module alone costs a cached build ~10 ms of start-up (tests/unit/test_startup_imports.py).
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

LIVE_LINES = 12  # output lines shown under a running step on a terminal


@cache
def _step_progress() -> tuple[type[Any], type[Any]]:
    """rich's Progress with the running step's last output lines under the bars, and the
    done/total column; made on first use, as rich is imported only then."""
    from rich.console import RenderableType
    from rich.progress import Progress, ProgressColumn, Task
    from rich.text import Text

    class _CountColumn(ProgressColumn):
        """done/total, or nothing for a task without a total (a running step)."""

        def render(self, task: Task) -> Text:
            return Text("" if task.total is None else f"{task.completed:g}/{task.total:g}")

    class _StepProgress(Progress):
        """rich's Progress with the running step's last output lines under the bars."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.output: deque[str] = deque(maxlen=LIVE_LINES)  # first: Progress may render while it starts
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

        def get_renderables(self) -> Iterable[RenderableType]:
            yield self.make_tasks_table(self.tasks)
            if self.output:
                yield Text("\n".join("  " + line for line in self.output), style="dim", no_wrap=True,
                           overflow="ellipsis")

    return _StepProgress, _CountColumn


def interactive(stream: IO[str] | None = None) -> bool:
    """True when STREAM (stderr) is a terminal and CI is not set: bars and live output, else lines."""
    target = stream or sys.stderr
    return target is not None and target.isatty() and not os.environ.get("CI")  # None: no stderr


class Reporter:
    """Where build steps say what they do; quiet=True keeps only errors."""

    def __init__(self, quiet: bool = False, verbose: bool = False, show_scripts: bool = False,
                 stream: IO[str] | None = None) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.show_scripts = show_scripts  # --show-scripts: maintainer scripts not run, what xarch made
        self.stream = stream  # None: stderr
        self._progress: Progress | None = None
        self._step: TaskID | None = None

    @cached_property
    def console(self) -> Console:
        """The rich Console on STREAM (stderr), made on first use."""
        from rich.console import Console

        # emoji=False: `:name:` in a file name or digest label is text, never an emoji.
        return Console(file=self.stream, stderr=self.stream is None, highlight=False, soft_wrap=True,
                       emoji=False)

    def info(self, message: str) -> None:
        """Print MESSAGE on stderr (above the bars, if any) unless quiet; never as rich markup."""
        if self.quiet:
            return
        # Messages name paths, tags and references the user or an image gave: no escape sequence
        # of theirs reaches the terminal (the message's own line breaks stay).
        message = "\n".join(visible(line) for line in message.split("\n"))
        if self._progress is not None:
            self._progress.console.print(message, markup=False)
        else:
            self._line(message)

    def _line(self, text: str) -> None:
        """TEXT (made visible) as lines on STREAM: through rich on a terminal, written as it is to a
        pipe or CI log, where rich would print the same characters and only cost its loading."""
        if interactive(self.stream):
            self.console.print(text, markup=False, highlight=False)
            return
        stream = self.stream or sys.stderr
        if stream is None:  # started without stderr: nothing to show it on
            return
        stream.write(text + "\n")
        stream.flush()

    def detail(self, message: str) -> None:
        """Print MESSAGE only with --verbose."""
        if self.verbose:
            self.info(message)

    def scripts(self, message: str) -> None:
        """A line of the maintainer-script listing (--show-scripts)."""
        if self.show_scripts:
            self.info(message)

    def step_status(self, message: str) -> None:
        """A build step starts ("…: running (native)"), was cached, or ended ("…: done in 2.0 s")."""
        if self.quiet:
            return
        progress = self._progress
        if progress is None:
            self.info(message)
            return
        if self._step is not None:
            progress.remove_task(self._step)
            self._step = None
        if isinstance(progress, _step_progress()[0]):
            progress.output.clear()
        if message.endswith(")") and ": running (" in message:
            from rich.markup import escape

            self._step = progress.add_task(escape(message), total=None)  # "[amd64]" is not markup
        else:
            self.info(message)

    def step_output(self, prefix: str, line: str) -> None:
        """One output line of the running step: under its progress line on a terminal,
        `[PREFIX] line` otherwise."""
        if self.quiet:
            return
        line = visible(line)  # a step is untrusted: no escape sequence of its own reaches a terminal or log
        progress: Any = self._progress
        if progress is not None and isinstance(progress, _step_progress()[0]) and self._step is not None:
            progress.output.append(line)
            return
        self._line(f"[{prefix}] {line}")

    def transfers(self) -> TransferBoard:
        """Byte progress of blobs sent or fetched (xarch.registry.progress.BlobProgress): a bar per
        blob (bytes, speed) on an interactive terminal, one `LABEL: NOTE` line per finished blob
        otherwise, nothing when quiet. Call close() when the transfer ends."""
        return TransferBoard(self)

    @contextmanager
    def tasks(self) -> Iterator[TaskBoard]:
        """A TaskBoard for counted work for the duration of the `with`: bars on an interactive
        terminal, plain lines otherwise (none when quiet).
        """
        if self.quiet or not interactive(self.stream):
            yield TaskBoard(None, self)
            return
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

        step_progress, count_column = _step_progress()
        columns = (TextColumn("{task.description}"), BarColumn(), count_column(), TimeElapsedColumn())
        with step_progress(*columns, console=self.console, transient=True) as progress:
            self._progress = progress
            try:
                yield TaskBoard(progress, self)
            finally:
                self._progress = None
                self._step = None


class TaskBoard:
    """Counted tasks: a bar each on a terminal, a line per finished unit otherwise."""

    def __init__(self, progress: Progress | None, reporter: Reporter) -> None:
        self.progress = progress
        self.reporter = reporter
        self._names: dict[int, str] = {}
        self._counter = 0

    def add(self, description: str, total: int) -> int:
        """A new task DESCRIPTION of TOTAL units; returns its id for advance()."""
        if self.progress is not None:
            return int(self.progress.add_task(description, total=total))
        self._counter += 1
        self._names[self._counter] = description
        return self._counter

    def advance(self, task: int, note: str = "") -> None:
        """One unit of TASK done; without bars, NOTE (if any) is printed as `description: note`."""
        if self.progress is not None:
            from rich.progress import TaskID

            self.progress.advance(TaskID(task))
        elif note:
            self.reporter.info(f"{self._names.get(task, '')}: {note}")


class TransferBoard:
    """Bytes moved per blob, shown the way the Reporter shows everything (see Reporter.transfers)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.bars: Progress | None = None
        if not reporter.quiet and interactive(reporter.stream):
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), console=reporter.console, transient=False)
            self.bars.start()
        self.tasks: dict[str, TaskID] = {}

    def start(self, label: str, total: int) -> None:
        """A blob LABEL of TOTAL bytes starts: a bar on a terminal, nothing on a line display."""
        if self.bars is not None:
            self.tasks[label] = self.bars.add_task(label, total=total)

    def advance(self, label: str, amount: int) -> None:
        """AMOUNT more bytes of LABEL moved (a label never started is ignored)."""
        if self.bars is not None and label in self.tasks:
            self.bars.advance(self.tasks[label], amount)

    def finish(self, label: str, note: str) -> None:
        """LABEL is done; NOTE says how ("sent 3 MB", "already there, skipped")."""
        if self.bars is None:
            self.reporter.info(f"{label}: {note}")
            return
        task = self.tasks.get(label)
        if task is None:
            task = self.tasks[label] = self.bars.add_task(label, total=1)
        self.bars.update(task, description=f"{label} {note}", completed=self.bars.tasks[task].total)

    def close(self) -> None:
        """Stop the live display, leaving the finished bars on screen."""
        if self.bars is not None:
            self.bars.stop()
