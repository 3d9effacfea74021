"""Progress where nobody watches a terminal (xarch/progress.py, xarch/registry/progress.py): plain
lines on stderr in CI and pipes, nothing but errors when quiet, `[platform] line` for step output,
one line per finished blob for a push or pull."""

from __future__ import annotations

import io

import pytest

from xarch.progress import Reporter, TransferBoard
from xarch.registry.progress import QuietProgress, progress_for


def test_plain_lines_in_ci(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    reporter = Reporter(verbose=False)
    reporter.info("[amd64] not markup")
    reporter.detail("only with -v")
    reporter.step_status("build step 1/1: running (native)")
    reporter.step_output("arm64", "compiling [x]")
    with reporter.tasks() as board:
        task = board.add("layers", 2)
        board.advance(task, "base")
    err = capsys.readouterr().err
    assert "[amd64] not markup\n" in err and "only with -v" not in err
    assert "build step 1/1: running (native)\n" in err and "[arm64] compiling [x]\n" in err
    assert "layers: base\n" in err


def test_quiet_keeps_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter(quiet=True, verbose=True, show_scripts=True)
    reporter.info("a")
    reporter.detail("b")
    reporter.scripts("c")
    reporter.step_status("d")
    reporter.step_output("p", "e")
    assert capsys.readouterr() == ("", "")


def test_a_pipe_gets_one_line_per_finished_blob() -> None:
    stream = io.StringIO()
    progress = progress_for(stream)
    assert isinstance(progress, TransferBoard) and progress.bars is None  # the one reporter, as lines
    progress.start("sha256:abc", 100)
    progress.advance("sha256:abc", 50)
    progress.finish("sha256:abc", "pushed")
    progress.close()
    assert stream.getvalue() == "sha256:abc: pushed\n"
    assert isinstance(progress_for(stream, quiet=True), QuietProgress)


def test_a_terminal_gets_a_bar_per_blob(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    stream = Terminal()
    progress = progress_for(stream)
    assert isinstance(progress, TransferBoard) and progress.bars is not None
    progress.start("sha256:abc", 100)
    progress.advance("sha256:abc", 100)
    progress.finish("sha256:abc", "sent 100 B")
    progress.close()
    assert "sha256:abc sent 100 B" in stream.getvalue() and "━" in stream.getvalue()


def test_text_is_printed_as_it_is_never_as_markup_or_emoji() -> None:
    """A file name, tag or digest label may hold `:name:` or `[tag]`: rich must not turn them into
    an emoji or a style."""
    stream = io.StringIO()
    Reporter(stream=stream).info("etc/a:smile:b [bold]x[/bold] sha256:abc:")
    assert stream.getvalue() == "etc/a:smile:b [bold]x[/bold] sha256:abc:\n"
