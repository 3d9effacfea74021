"""The `xarch` console script, and one way every failure ends (xarch/errors.py).

click is loaded only when a command line is read by it (xarch.cli.group): a build replayed from its
record (xarch.cli.replay) never loads it, nor does a failure it ends.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from xarch.errors import ExitCode, XarchError
from xarch.visible import visible

if TYPE_CHECKING:
    import click


def __getattr__(name: str) -> Any:
    """`cli`, the command group (xarch.cli.group), loaded with click when first asked for (PEP 562)."""
    if name != "cli":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from xarch.cli.group import cli

    return cli


def run(command: click.Command, args: list[str] | None = None, prog_name: str = "xarch") -> None:
    """Run the click command; every failure ends as one line on stderr and a code of xarch/errors.py.

    XarchError: its message, its exit_code. Usage errors: one line naming the command, exit 2. OSError
    (a full disk, a folder not writable): the path and the reason, exit 2 (3 when the host
    is out of space). Anything else is a bug: one line naming it, exit 70, and the
    traceback only with XARCH_DEBUG=1.
    """
    with failures():
        command.main(args=args, prog_name=prog_name, standalone_mode=False)


@contextlib.contextmanager
def failures() -> Iterator[None]:
    """The one way a command's failure ends (see run): for click's commands and for a build
    replayed from its record (xarch.cli.replay) alike."""
    try:
        yield
    except XarchError as error:
        _debug_traceback()
        _fail(f"xarch: error: {error}", error.exit_code, error.details, error.hint)
    except KeyboardInterrupt:
        _fail("xarch: interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`xarch diff … | head`): exit as a shell reports SIGPIPE, with
        # stdout pointed at /dev/null so flushing it at exit cannot fail again (the recipe of
        # Python's signal module documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    except OSError as error:
        _debug_traceback()
        code = ExitCode.HOST if error.errno in _HOST_ERRNOS else ExitCode.INPUT
        held = getattr(sys.stdout, "buffer", None)
        raw = getattr(held, "raw", held)  # unbuffered (python -u): the buffer is the raw file
        if error.filename == "stdout" and isinstance(raw, (_Stdout, _ClosedStdout)):
            # What stdout still holds would fail again at exit, with a traceback: let it go nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        _fail(f"xarch: error: {_os_error_text(error)}", code)
    except RecursionError as error:
        # A reader that recursed on nested input the checks did not bound; exit 2 (the input), not 70.
        _debug_traceback()
        _fail(f"xarch: error: input nested too deeply to process ({error})", ExitCode.INPUT)
    except Exception as error:
        _click_ending(error)  # returns only when ERROR is not click's
        _debug_traceback()
        _fail(f"xarch: internal error: {type(error).__name__}: {error} "
              "(this is a bug; XARCH_DEBUG=1 shows the traceback)", ExitCode.INTERNAL)


def _click_ending(error: Exception) -> None:
    """End as click's own exceptions ask: Abort as an interrupt (130), a usage error as one line
    naming the command and its --help (exit 2), Exit with its code. Returns when ERROR is none of
    them (or click is not loaded, so ERROR cannot be one)."""
    click_module = sys.modules.get("click")
    if click_module is None:
        return
    if isinstance(error, click_module.exceptions.Abort):
        _fail("xarch: interrupted", 130)
    if isinstance(error, click_module.ClickException):
        # One line, as every other bad input ends (click's own text is three: usage, a hint, the error).
        # Click quotes the value it refused as typed: _fail shows control characters escaped.
        context = getattr(error, "ctx", None)
        help_asked = getattr(click_module.exceptions, "NoArgsIsHelpError", None)  # click ≥ 8.2
        if help_asked is not None and isinstance(error, help_asked) and context is not None:
            # `xarch` or `xarch plugin` alone: the help, as lines (click 8.1 printed it and exited 0).
            for line in context.get_help().splitlines():
                _say(visible(line))
            sys.exit(error.exit_code)
        if isinstance(error, click_module.UsageError) and context is not None:
            path = context.command_path
            _fail(f"xarch: error: {path}: {error.format_message()} (see '{path} --help')", error.exit_code)
        _fail(f"xarch: error: {error.format_message()}", error.exit_code)
    if isinstance(error, click_module.exceptions.Exit):
        sys.exit(error.exit_code)


# A full disk or quota is the host's, not the input's.
_HOST_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _os_error_text(error: OSError) -> str:
    """`PATH: reason`, naming both paths of a rename or link; an error that names no path, met
    while the working folder is gone (getcwd(3) fails), names the working folder."""
    reason = error.strerror or str(error)
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    if not names:
        try:
            os.getcwd()
        except OSError:
            names = ["the working folder"]  # removed: os.getcwd() and relative paths fail
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _fail(message: str, code: int, details: Sequence[str] = (), hint: str = "") -> NoReturn:
    """Print MESSAGE as exactly one line (a file name may hold a newline or bytes that are not UTF-8),
    then DETAILS (a failed step's last output lines), each indented as quoted context."""
    # Messages quote what the user or an image gave (a --platform, a tag, a path): a control
    # character in it is shown escaped, never sent to the terminal (xarch.visible).
    one_line = " ".join(visible(part.strip()) for part in message.splitlines() if part.strip())
    _say(_bounded(one_line.encode("utf-8", "backslashreplace").decode("utf-8")))
    for line in details:
        _say("  | " + _bounded(visible(line).encode("utf-8", "backslashreplace").decode("utf-8")))
    if hint:
        _say("hint: " + visible(" ".join(hint.split())))
    sys.exit(code)


MAX_LINE = 2048  # characters of one error or detail line; a longer one keeps its two ends


def _bounded(line: str) -> str:
    """LINE, or its first and last MAX_LINE/2 characters around a note of how many were left out:
    a message quoting a 100 KB argument, or a step's 1 MB line, stays a line a terminal can show,
    and keeps what names the input (its start) and the reason (its end)."""
    if len(line) <= MAX_LINE:
        return line
    half = MAX_LINE // 2
    return f"{line[:half]} […{len(line) - 2 * half} characters left out…] {line[-half:]}"


def _say(line: str) -> None:
    """LINE on stderr, flushed (as click.echo(err=True) did); nothing when stderr is gone."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _debug_traceback() -> None:
    if os.environ.get("XARCH_DEBUG") == "1":
        import traceback  # only here: every command would pay for loading it

        traceback.print_exc()


def _terminated(signum: int, frame: object) -> None:
    # SystemExit unwinds like an exception, so atomic_dir/atomic_file remove their staging.
    raise SystemExit(128 + signum)


def main() -> None:
    """The `xarch` console script: run the command line; exit with a code of xarch/errors.py
    (SIGTERM ends as exit 128+15 after outputs in progress are removed, never half-written).
    """
    if sys.argv[1:2] in (["build"], ["push"]):  # the commands a build server runs (xarch.server.client)
        with failures():  # Ctrl-C before the server has the command: "xarch: interrupted", exit 130
            from xarch.server.client import delegate

            served = delegate(sys.argv)  # `xarch serve` is running: the command runs there
        if served is not None:
            sys.exit(served)
    command_line(sys.argv[1:])


def command_line(args: list[str], prog_name: str = "xarch") -> None:
    """Run ARGS (argv without the program) as the command line of PROG_NAME, in this process: the
    `xarch` script and `docker xarch` (xarch.cli.plugin) alike, so that both remove what a
    SIGTERM interrupts and end every failure the same way. Exits as `main` says."""
    signal.signal(signal.SIGTERM, _terminated)
    _name_stdout()
    try:
        if args[:1] == ["build"]:
            with failures():
                from xarch.cli.replay import replay

                if replay(args):  # an unchanged plain build: from its record, the recipe unread
                    return
        elif args[:1] == ["push"]:
            with failures():
                from xarch.cli.pushreplay import replay as replay_push

                if replay_push(args):  # an unchanged re-push: three requests, no layer read
                    return
        with failures():  # Ctrl-C while click loads: "xarch: interrupted", exit 130, no traceback
            from xarch.cli.group import cli
            from xarch.run.overlay import allow_user_namespace

        allow_user_namespace()  # a short-lived process: without root, stage roots may be overlays too
        run(cli, args, prog_name)
    finally:
        _flush_stdout()


def _flush_stdout() -> None:
    """Flush what stdout still holds now, where a failure can be one line and an exit code, not a
    traceback printed by the interpreter's flush at exit (exit 120)."""
    try:
        sys.stdout.flush()
    except OSError as error:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        _fail(f"xarch: error: {_os_error_text(error)}",
              ExitCode.HOST if error.errno in _HOST_ERRNOS else ExitCode.INPUT)
    except ValueError:  # stdout was closed: nothing is held
        pass


class _Stdout(io.FileIO):
    """File descriptor 1 whose write errors name it: an OSError of a write carries no file name,
    so `xarch inspect --json > /dev/full` would say only "No space left on device"."""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as error:
            error.filename = "stdout"
            raise


class _ClosedStdout(io.RawIOBase):
    """Stdout when the command was started without one: the first write fails as writing to a
    closed descriptor does (EBADF), naming stdout, so the command ends with one line and exit 2;
    later writes (the flushes on the way out) are dropped, so that line is said once."""

    failed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.failed:
            return len(data)
        self.failed = True
        raise OSError(errno.EBADF, "Bad file descriptor (stdout is closed)", "stdout")

    def fileno(self) -> int:
        return 1  # /dev/null (see _name_stdout): rich and the SIGPIPE handling may ask


def _name_stdout() -> None:
    """Put _Stdout under sys.stdout, keeping its encoding, error handler and buffering; or, when the
    command was started with stdout closed (`xarch inspect … >&-`, where Python leaves sys.stdout
    None), _ClosedStdout, with /dev/null holding descriptor 1 so that no file xarch opens later
    can take that number and receive what is printed."""
    old = sys.stdout
    if old is None:
        try:
            os.fstat(1)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != 1:
                os.dup2(null, 1)
                os.close(null)
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_ClosedStdout()), encoding="utf-8")
        return
    if not isinstance(old, io.TextIOWrapper):
        return
    try:
        if old.fileno() != 1:
            return
    except (OSError, ValueError):
        return
    old.flush()
    raw = _Stdout(1, "wb", closefd=False)
    # `python -u` / PYTHONUNBUFFERED leave stdout unbuffered (its buffer is the FileIO itself): kept so.
    layer: Any = raw if isinstance(old.buffer, io.FileIO) else io.BufferedWriter(raw)
    sys.stdout = io.TextIOWrapper(layer, encoding=old.encoding, errors=old.errors,
                                  line_buffering=old.line_buffering, write_through=old.write_through)
