"""The `xarch` command group: a lazy command table, and one way every failure ends (xarch/errors.py)."""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click

from xarch import __version__
from xarch.errors import ExitCode, XarchError
from xarch.visible import visible


class LazyGroup(click.Group):
    """Commands from other packages load only when run (or listed): startup stays fast.

    The pattern click's documentation gives for lazily loaded subcommands.
    """

    # name: (module:attribute, the one line `xarch --help` lists, so listing imports no command)
    lazy: dict[str, tuple[str, str]] = {
        "build": ("xarch.cli.build:build_command",
                  "Build the recipe for every platform into one OCI image index."),
        "inspect": ("xarch.cli.inspect:inspect_command",
                    "Show the images of a layout or archive, or a registry image's signatures."),
        "verify": ("xarch.cli.verify:verify_command",
                   "Rebuild under varied conditions, or against a published image; compare digests."),
        "lock": ("xarch.cli.lock:lock_command",
                 "Resolve and pin every package for every platform into xarch.lock."),
        "outdated": ("xarch.cli.outdated:outdated_command",
                     "List locked packages with a newer version in their archives (exit 1 if any)."),
        "push": ("xarch.cli.push:push_command",
                 "Push an OCI layout or oci-archive to a registry reference."),
        "assemble": ("xarch.cli.assemble:assemble_command",
                     "Build an index from per-platform manifests already in a registry; push it."),
        "load": ("xarch.cli.load:load_command",
                 "Load one platform of a layout or archive into the local Docker engine."),
        "plugin": ("xarch.cli.plugin:plugin_group",
                   "Use xarch as a Docker CLI plugin (`docker xarch ...`)."),
        "platforms": ("xarch.cli.platforms:platforms_command",
                      "Which strategies (native, cross, emulate) work here for each platform."),
        "diff": ("xarch.cli.diff:diff_command",
                 "Compare two images down to the file (exit 1 when they differ)."),
        "trace": ("xarch.cli.trace:trace_command",
                  "Run the image under strace and record the paths it uses in xarch.trace."),
        "sbom": ("xarch.cli.sbom:sbom_command",
                 "Print (or write) the SBOM attached to an image."),
        "referrers": ("xarch.cli.referrers:referrers_command",
                      "List what is attached to an image: SBOMs, provenance, attestations."),
        "sign": ("xarch.cli.sign:sign_command",
                 "Sign a pushed index and every platform manifest, as cosign does."),
        "verify-signature": ("xarch.cli.verify_signature:verify_signature_command",
                             "Check that an index and every manifest carry a cosign signature by KEY."),
        "attest": ("xarch.cli.attest:attest_command",
                   "Attach a signed in-toto statement to a registry image, as cosign does."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, the lazy ones included, sorted (for --help), without importing any."""
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command NAME, importing its module only now (None when unknown); every option and argument
        of it made to refuse an empty value.
        """
        if name in self.lazy:
            module_name, _, attribute = self.lazy[name][0].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
        else:
            command = super().get_command(ctx, name)
        if command is not None:
            refuse_empty_values(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table: `xarch --help` stays fast and imports no command."""
        rows = [(name, self.lazy[name][1]) for name in sorted(self.lazy)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def refuse_empty_values(command: click.Command) -> None:
    """Make every option and argument of COMMAND (and of its subcommands) refuse "".

    An empty value is a mistake, never a request for the default: `--platform ""` built every
    platform, `--against ""` ran a plain verify and `-f ""` read ./xarch.yaml (click turns "" into
    the path "."). One check, on the raw value before click converts it, for every parameter, so
    an option added later cannot forget it. Click reports it as a usage error, exit 2.
    """
    for param in command.params:
        if isinstance(param, click.Option) and param.flag_value == "":
            continue  # `--load` alone means "" (its default name): bare and empty are one to click
        if not getattr(param, "refuses_empty", False):
            # Set on the instance: click has no hook that sees raw values for all parameters.
            param.process_value = _refusing_empty(param, param.process_value)  # type: ignore[method-assign]
            param.refuses_empty = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            refuse_empty_values(sub)


def _refusing_empty(param: click.Parameter, process: Any) -> Any:
    def process_value(ctx: click.Context, value: Any) -> Any:
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(item, str) and not item.strip() for item in values):
            raise click.BadParameter("must not be empty", ctx=ctx, param=param)
        return process(ctx, value)

    return process_value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xarch")
def cli() -> None:
    """Reproducible, minimal, multi-architecture container images from one recipe."""


def run(command: click.Command, args: list[str] | None = None, prog_name: str = "xarch") -> None:
    """Run the click command; every failure ends as one line on stderr and a code of xarch/errors.py.

    XarchError: its message, its exit_code. Usage errors: click's text, exit 2. OSError
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
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("xarch: interrupted", 130)
    except click.ClickException as error:
        # Click quotes the value it refused as typed: its text is shown with control characters escaped.
        shown = io.StringIO()
        error.show(file=shown)
        for line in shown.getvalue().splitlines():
            click.echo(visible(line), err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
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
        _debug_traceback()
        _fail(f"xarch: internal error: {type(error).__name__}: {error} "
              "(this is a bug; XARCH_DEBUG=1 shows the traceback)", ExitCode.INTERNAL)


# A full disk or quota is the host's, not the input's.
_HOST_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _os_error_text(error: OSError) -> str:
    """`PATH: reason`, naming both paths of a rename or link."""
    reason = error.strerror or str(error)
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _fail(message: str, code: int, details: Sequence[str] = (), hint: str = "") -> NoReturn:
    """Print MESSAGE as exactly one line (a file name may hold a newline or bytes that are not UTF-8),
    then DETAILS (a failed step's last output lines), each indented as quoted context."""
    # Messages quote what the user or an image gave (a --platform, a tag, a path): a control
    # character in it is shown escaped, never sent to the terminal (xarch.visible).
    one_line = " ".join(visible(part.strip()) for part in message.splitlines() if part.strip())
    click.echo(one_line.encode("utf-8", "backslashreplace").decode("utf-8"), err=True)
    for line in details:
        click.echo("  | " + visible(line).encode("utf-8", "backslashreplace").decode("utf-8"), err=True)
    if hint:
        click.echo("hint: " + visible(" ".join(hint.split())), err=True)
    sys.exit(code)


def _debug_traceback() -> None:
    if os.environ.get("XARCH_DEBUG") == "1":
        traceback.print_exc()


def _terminated(signum: int, frame: object) -> None:
    # SystemExit unwinds like an exception, so atomic_dir/atomic_file remove their staging.
    raise SystemExit(128 + signum)


def main() -> None:
    """The `xarch` console script: run the command line; exit with a code of xarch/errors.py
    (SIGTERM ends as exit 128+15 after outputs in progress are removed, never half-written).
    """
    signal.signal(signal.SIGTERM, _terminated)
    _name_stdout()
    try:
        if sys.argv[1:2] == ["build"]:
            with failures():
                from xarch.cli.replay import replay

                if replay(sys.argv[1:]):  # an unchanged plain build: from its record, the recipe unread
                    return
        from xarch.run.overlay import allow_user_namespace

        allow_user_namespace()  # a short-lived process: without root, stage roots may be overlays too
        run(cli)
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
