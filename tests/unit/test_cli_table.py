"""The command table of xarch/cli/group.py: every entry loads, and `xarch --help` imports no command."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from xarch.cli import (  # every command module, imported as a user's command loads it
    assemble,
    attest,
    build,
    diff,
    inspect,
    load,
    lock,
    outdated,
    platforms,
    plugin,
    push,
    referrers,
    sbom,
    serve,
    sign,
    signing,
    trace,
    verify,
    verify_signature,
)
from xarch.cli.group import LazyGroup, cli
from xarch.cli.options import Remote, json_option, platforms_option, quiet_option, remote_options

MODULES = (assemble, attest, build, diff, inspect, load, lock, outdated, platforms, plugin, push, referrers,
           sbom, serve, sign, signing, trace, verify, verify_signature)


def test_every_table_entry_is_a_command_of_that_name() -> None:
    ctx = click.Context(cli)
    for name, (target, summary) in LazyGroup.lazy.items():
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), target
        assert command.name == name, target
        assert summary and len(summary) <= 90 and "\n" not in summary, name


def test_help_lists_every_command_without_importing_any() -> None:
    code = ("import sys; from xarch.cli import main; sys.argv = ['xarch', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('xarch.') or m.split('.')[0] in "
            "('docker', 'requests', 'pydantic', 'plumbum', 'yaml', 'rich')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *help_lines, modules = result.stdout.strip().splitlines()
    # xarch.run.overlay (stdlib only) holds the flag main() sets so that the command, and only it,
    # may enter a user namespace for stage roots without root.
    assert eval(modules) == ["xarch.cli", "xarch.cli.group", "xarch.cli.main", "xarch.errors",  # noqa: S307
                             "xarch.run", "xarch.run.overlay", "xarch.visible"]
    listed = "\n".join(help_lines)
    for name in LazyGroup.lazy:
        assert f"  {name} " in listed, name



def test_the_table_names_every_command_module() -> None:
    named = {target.partition(":")[0] for target, _ in LazyGroup.lazy.values()}
    helpers = {"xarch.cli.signing"}  # shared by sign, verify-signature, inspect and build
    assert named | helpers == {module.__name__ for module in MODULES}


def test_shared_options_are_one_definition() -> None:
    """build and verify take the same --platform, --json, -q objects (options.py), worded once."""
    for option in (json_option, platforms_option, quiet_option):
        assert callable(option)
    ctx = click.Context(cli)
    build_command, verify_command = cli.get_command(ctx, "build"), cli.get_command(ctx, "verify")
    assert build_command is not None and verify_command is not None
    helps = {command.name: {p.name: p.help for p in command.params if isinstance(p, click.Option)}
             for command in (build_command, verify_command)}
    assert helps["build"]["platform_list"] == helps["verify"]["platform_list"]
    assert helps["build"]["as_json"] == helps["verify"]["as_json"]


def test_remote_options_fold_into_one_value() -> None:
    @click.command()
    @remote_options()
    def show(remote: Remote) -> None:
        click.echo(f"{remote.insecure} {remote.ca_cert} {remote.credentials}")

    from click.testing import CliRunner

    assert CliRunner().invoke(show, ["--insecure"]).output == "True None None\n"
    refused = CliRunner().invoke(show, ["-u", "alice"])
    assert refused.exit_code != 0 and "--password-stdin" in str(refused.exception)


def test_conflicting_or_unused_registry_options_are_refused() -> None:
    from click.testing import CliRunner

    from xarch.registry.errors import RegistryUsageError

    @click.command()
    @remote_options()
    def show(remote: Remote) -> None:
        remote.settings(None)  # a local image: no registry

    runner = CliRunner()
    import certifi  # a real PEM bundle, as --ca-cert takes

    both = runner.invoke(show, ["--insecure", "--ca-cert", certifi.where()])
    assert isinstance(both.exception, RegistryUsageError) and "give one" in str(both.exception)
    unused = runner.invoke(show, ["-u", "alice", "--password-stdin"], input="secret\n")
    assert isinstance(unused.exception, RegistryUsageError)
    assert "no registry reference" in str(unused.exception)


def test_results_console_and_replay_load_no_click() -> None:
    """A build replayed from its record prints through xarch.cli.console and never loads click."""
    code = ("import sys; import xarch.cli, xarch.cli.replay, xarch.cli.console as c; "
            "from xarch.summary import print_summary; s = c.stdout; "
            "print(type(s).__name__, s._highlight, 'click' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["_ResultsConsole", "False", "False"]


def test_a_results_console_says_a_closed_pipe_as_broken_pipe() -> None:
    """rich's own handling would exit 1 (a negative verdict in xarch's codes); xarch.cli.main ends
    BrokenPipeError as SIGPIPE (141)."""
    from xarch.cli.console import results_console

    console = results_console()
    with pytest.raises(BrokenPipeError):
        console.on_broken_pipe()


def test_failures_end_as_the_exit_code_table_says(capsys: pytest.CaptureFixture[str]) -> None:
    """xarch.cli.main.failures: click's usage error as one line (exit 2), a bug as one line
    (exit 70), with or without click loaded."""
    from xarch.cli.main import failures

    for error, code, words in ((click.UsageError("no such option: --bogus"), 2, "no such option"),
                               (click.exceptions.Abort(), 130, "interrupted"),
                               (ValueError("boom"), 70, "internal error: ValueError: boom")):
        with pytest.raises(SystemExit) as exit_, failures():
            raise error
        assert exit_.value.code == code
        assert words in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["build", "--nope"], "xarch build: No such option"),
    (["push"], "xarch push: Missing argument"),
    (["build", "--platform"], "xarch build: Option '--platform' requires an argument"),
    (["frob"], "xarch: No such command 'frob'"),
    (["build", "--strategy", "bogus\x1b[2J"], "xarch build: Invalid value for '--strategy'"),
])
def test_a_usage_error_is_one_line_naming_the_command(args: list[str], words: str) -> None:
    """Bad arguments end as every bad input does: exactly one line on stderr, exit 2, naming the
    command and where its usage is, with what was typed shown escaped (no terminal control reaches it)."""
    code = "import sys; from xarch.cli import main; sys.argv[0] = 'xarch'; main()"
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xarch: error: "), result.stderr
    assert words in lines[0] and "--help')" in lines[0] and "\x1b" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args, usage", [([], "Usage: xarch [OPTIONS] COMMAND"),
                                         (["plugin"], "Usage: xarch plugin [OPTIONS] COMMAND")])
def test_a_group_alone_prints_its_help_as_lines(args: list[str], usage: str) -> None:
    """`xarch` alone is a request for help, not one error line (that joined 1.8 KB of help into one)."""
    code = "import sys; from xarch.cli import main; sys.argv[0] = 'xarch'; main()"
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and lines[0] == usage + " [ARGS]...", result.stderr
    assert "Commands:" in lines and "xarch: error" not in result.stderr


def test_an_error_quoting_a_huge_argument_keeps_both_ends() -> None:
    """A 131 KB argument was echoed whole in its error line; the line now keeps its start (what is
    named) and its end (the reason, the --help), and says how much was left out."""
    code = "import sys; from xarch.cli import main; sys.argv[0] = 'xarch'; main()"
    result = subprocess.run([sys.executable, "-c", code, "build", "--strategy", "x" * 131_000],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    (line,) = result.stderr.splitlines()
    assert result.returncode == 2 and len(line) < 2200, len(line)
    assert line.startswith("xarch: error: xarch build: Invalid value for '--strategy'")
    assert line.endswith("(see 'xarch build --help')") and "characters left out" in line
