"""Registry errors a user can act on (one line each; never a credential in the text)."""

from xarch.errors import ExitCode, XarchError


class RegistryError(XarchError):
    """A registry refused or failed a request; the message names the reference and the step."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, or kept failing (429/5xx) past the retries and waits (exit 4)."""

    exit_code = ExitCode.NETWORK


class AuthError(RegistryError):
    """The registry rejected the credentials (or none were found where they were needed)."""


class InvalidReference(RegistryError):
    """An image reference could not be parsed; the message quotes it."""


class LayoutError(XarchError):
    """An OCI layout directory is missing a file or holds a blob whose digest does not match."""
