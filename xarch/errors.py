"""Errors a user can act on. The CLI prints each as one line and exits non-zero."""


class XarchError(Exception):
    """Base of every error shown to the user as `xarch: error: <message>` (exit 1)."""

    exit_code = 1


class RecipeError(XarchError):
    """The recipe (or a file it names) is wrong; the message names file, line and field."""


class BuildError(XarchError):
    """A build could not complete; nothing was written to the output."""
