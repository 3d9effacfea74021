"""No option or argument of any command takes "" as "use the default".

`--platform ""` once built every platform, `--against ""` ran a plain verify and `-f ""` read
./xarch.yaml. The check is one wrapper on every parameter (xarch.cli.refuse_empty_values); this walks
every command, lazy ones included, so a parameter added later is covered too.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from tests.support.hello import run_xarch
from xarch.cli.group import cli


def _commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from _commands(command, ctx, (*prefix, name))
        else:
            yield (*prefix, name), command


def _cases() -> Iterator[tuple[str, ...]]:
    ctx = click.Context(cli)
    for path, command in _commands(cli, ctx):
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        if arguments:
            yield (*path, "")  # the first argument, empty
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count \
                    and param.flag_value != "" and param.name not in ("help",):
                yield (*path, param.opts[-1], "")


CASES = list(_cases())


def test_every_command_is_walked() -> None:
    walked = {case[0] for case in CASES}
    assert {"build", "verify", "push", "load", "diff", "lock", "assemble", "plugin"} <= walked, walked
    assert len(CASES) > 25, CASES


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_an_empty_value_is_a_usage_error(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "must not be empty" in result.output, result.output


@pytest.mark.parametrize("args", [("build", "--platform", " "), ("verify", "--against", "")])
def test_through_the_real_command_line(args: tuple[str, ...]) -> None:
    result = run_xarch(*args)
    assert result.returncode == 2, result
    assert "must not be empty" in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["amd64\n", "\tamd64", "amd64\x00"])
def test_a_platform_with_control_characters_is_unknown(value: str) -> None:
    """Found by the new-user attack: `--platform $'amd64\\n'` was taken as amd64."""
    from xarch import platforms

    with pytest.raises(platforms.UnknownPlatform):
        platforms.get(value)
    assert platforms.get(" amd64 ").name == "amd64"
