"""Errors of the Debian source; each message is one line a user can act on.

Exit codes follow xarch/errors.py: what the mirror served or failed to serve is 4 (a
network fault, or a mirror whose files no longer match their signature or the lock); what
the recipe asks for, the lock says, or a .deb holds is 2.
"""

from xarch.errors import InputError, NetworkError, XarchError


class DebianError(XarchError):
    """Base of every Debian-source error."""


class SignatureError(DebianError, NetworkError):
    """InRelease is unsigned, badly signed, or signed by a key that is not trusted (exit 4)."""


class ReleaseExpired(DebianError, NetworkError):
    """InRelease's Valid-Until is in the past (a replayed or stale mirror) (exit 4)."""


class IndexMismatch(DebianError, NetworkError):
    """A Packages index is missing from Release or does not match its hash (exit 4)."""


class ResolveError(DebianError, InputError):
    """A package or dependency cannot be satisfied (exit 2)."""


class FetchError(DebianError, NetworkError):
    """A download failed or did not match the lock (exit 4)."""


class DownloadError(FetchError):
    """The mirror could not be reached, refused the file, or kept dropping it past the retries (exit 4)."""


class UnpackError(DebianError, InputError):
    """A .deb is malformed or tries to put something unsafe into the image (exit 2)."""


class LockError(DebianError, InputError):
    """xarch.lock is missing, unreadable or does not match the recipe (exit 2)."""
