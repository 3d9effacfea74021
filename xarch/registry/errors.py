"""Registry errors a user can act on (one line each; never a credential in the text).

Exit codes follow xarch/errors.py: what the registry or the connection did is 4; what the
user typed (a reference, an option) or gave (a layout) is 2.
"""

from xarch.errors import ExitCode, NetworkError


class RegistryError(NetworkError):
    """A registry refused or failed a request; the message names the reference and the step (exit 4).
    STATUS: the HTTP status of the answer that ended it, when there was one."""

    status: int | None = None


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, or kept failing (429/5xx) past the retries and waits (exit 4)."""

    exit_code = ExitCode.NETWORK


class AuthError(RegistryError):
    """The registry rejected the credentials (or none were found where they were needed) (exit 4)."""


class RegistryUsageError(RegistryError):
    """An argument of a registry command is wrong (a digest where a tag belongs, KEY=VALUE…) (exit 2)."""

    exit_code = ExitCode.INPUT


class InvalidReference(RegistryUsageError):
    """An image reference could not be parsed; the message quotes it (exit 2)."""



class CorruptAnswer(RegistryError):
    """The registry answered bytes that do not match the digest (or size) asked for.

    Exit 4 (network or registry), not 2: the fault is the registry's (or the path to it), not
    the user's input; the message names the registry, the repository and the digest.
    """

    exit_code = ExitCode.NETWORK

