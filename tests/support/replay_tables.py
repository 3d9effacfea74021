"""The check that a command's options are all placed in its replay table (xarch.cli.replay,
xarch.cli.pushreplay): an option added to the command must be declared replayed (with its arity)
or not replayed before the tests pass."""

from __future__ import annotations

from collections.abc import Mapping, Set

import click


def assert_every_option_is_placed(command: click.Command, replayed: Mapping[str, bool],
                                  not_replayed: Set[str]) -> None:
    """Every option name of COMMAND is in REPLAYED ({name: takes a value}) or NOT_REPLAYED, not both,
    and REPLAYED's arities are click's."""
    options = {}
    for param in command.params:
        for name in param.opts:
            if name.startswith("-"):  # an argument's opts hold its name
                options[name] = not getattr(param, "is_flag", False)
    assert set(options) == set(replayed) | set(not_replayed)
    assert not set(replayed) & set(not_replayed)
    for name, takes_value in replayed.items():
        assert options[name] == takes_value, name
