"""Commands made from parts of the CLI module, kept apart so they load only when used."""

from __future__ import annotations

from xarch.build.packages import lock_inputs
from xarch.recipe import load
from xarch.sources.debian.commands import make_lock_command, make_outdated_command

lock_command = make_lock_command(lambda path: lock_inputs(load(path)))
outdated_command = make_outdated_command(lambda path: lock_inputs(load(path)))

# Python dependencies (xarch/sources/python): their own section of xarch.lock, after the Debian part.
from xarch.sources.python.commands import with_python  # noqa: E402

lock_command = with_python(lock_command, lambda path: lock_inputs(load(path)), load)
