"""The command table of xarch/cli/main.py: every entry loads, and `xarch --help` imports no command."""

from __future__ import annotations

import subprocess
import sys

import click

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
    sign,
    signing,
    trace,
    verify,
    verify_signature,
)
from xarch.cli.main import LazyGroup, cli
from xarch.cli.options import Remote, json_option, platforms_option, quiet_option, remote_options

MODULES = (assemble, attest, build, diff, inspect, load, lock, outdated, platforms, plugin, push, referrers,
           sbom, sign, signing, trace, verify, verify_signature)


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
    assert eval(modules) == ["xarch.cli", "xarch.cli.main", "xarch.errors", "xarch.run",  # noqa: S307 (our output)
                             "xarch.run.overlay", "xarch.visible"]
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
