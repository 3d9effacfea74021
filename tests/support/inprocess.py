"""The CLI run in this process, exactly as `xarch.cli.main` runs it, for tests that call it
thousands of times (fuzzers) where a subprocess each would take minutes.

`xarch_in_process(*args)` goes through `xarch.cli.run` — the same code that turns an XarchError
into one `xarch: error:` line and its exit code — and captures stdout, stderr and the exit code.
Any other exception escapes to the test: that is a bug the CLI would show as a traceback (or,
where `run` maps it, as exit 70), and the test must fail with it.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from xarch.cli.group import cli
from xarch.cli.main import run
from xarch.errors import ExitCode

# Exit codes of a handled outcome; 70 (internal error) is a bug, never an answer.
HANDLED = {int(code) for code in ExitCode if code != ExitCode.INTERNAL}


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    def one_error_line(self, *parts: str) -> str:
        """The one `xarch: error:` line, last on stderr (progress lines may come before it), asserted
        to contain every one of PARTS."""
        lines = self.stderr.splitlines()
        errors = [line for line in lines if line.startswith("xarch: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in self.stderr, \
            f"exit {self.code}, expected one error line, got stderr:\n{self.stderr}"
        for part in parts:
            assert part in errors[0], f"{part!r} not in {errors[0]!r}"
        return errors[0]


def xarch_in_process(*args: str) -> Outcome:
    """Run `xarch ARGS` through xarch.cli.run in this process; the exit code it would end with."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            run(cli, list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return Outcome(code, out.getvalue(), err.getvalue())
