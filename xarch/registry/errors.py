"""Registry errors a user can act on (one line each; never a credential in the text)."""

from xarch.errors import XarchError


class RegistryError(XarchError):
    """A registry refused or failed a request; the message names the reference and the step."""


class AuthError(RegistryError):
    """The registry rejected the credentials (or none were found where they were needed)."""


class InvalidReference(RegistryError):
    """An image reference could not be parsed; the message quotes it."""


class LayoutError(XarchError):
    """An OCI layout directory is missing a file or holds a blob whose digest does not match."""
