"""Errors of the Debian source; each message is one line a user can act on."""

from xarch.errors import NetworkError, XarchError


class DebianError(XarchError):
    """Base of every Debian-source error."""


class SignatureError(DebianError):
    """InRelease is unsigned, badly signed, or signed by a key that is not trusted."""


class ReleaseExpired(DebianError):
    """InRelease's Valid-Until is in the past (a replayed or stale mirror)."""


class IndexMismatch(DebianError):
    """A Packages index is missing from Release or does not match its hash."""


class ResolveError(DebianError):
    """A package or dependency cannot be satisfied."""


class FetchError(DebianError):
    """A download failed or did not match the lock."""


class DownloadError(FetchError, NetworkError):
    """The mirror could not be reached, refused the file, or kept dropping it past the retries (exit 4)."""


class UnpackError(DebianError):
    """A .deb is malformed or tries to put something unsafe into the image."""


class LockError(DebianError):
    """xarch.lock is missing, unreadable or does not match the recipe."""
