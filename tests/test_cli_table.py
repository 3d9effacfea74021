"""The command table of xarch/cli/main.py: every entry loads, and `xarch --help` imports no command."""

from __future__ import annotations

import subprocess
import sys

import click

from xarch.cli.main import LazyGroup, cli


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
    assert eval(modules) == ["xarch.cli", "xarch.cli.main", "xarch.errors", "xarch.visible"]  # noqa: S307 (our own output)
    listed = "\n".join(help_lines)
    for name in LazyGroup.lazy:
        assert f"  {name} " in listed, name
