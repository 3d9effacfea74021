"""Read a small file a user names (a key, a statement, a secret) without trusting what it is.

`open()` + `read()` blocks forever on a FIFO, reads /dev/zero until memory runs out and fails
on a folder with a message that does not say which option was wrong. read_small opens without
blocking, checks the file is regular and small enough before reading, and says why in a few
words the caller puts after its own name for the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from xarch.errors import InputError, XarchError


class SmallFileError(InputError):
    """Why a file cannot be read: 'no such file', 'is a folder', 'is not a regular file (a FIFO,
    device or socket)', 'is N bytes, more than LIMIT', or the OS's reason. Callers prefix it."""


def read_small(path: Path | str, limit: int) -> bytes:
    """The bytes of the regular file PATH (symlinks followed), at most LIMIT of them.

    Raises SmallFileError (exit 2) when PATH is missing, unreadable, not a regular file or
    longer than LIMIT bytes (also when it grows past LIMIT while read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SmallFileError("no such file") from None
    except IsADirectoryError:
        raise SmallFileError("is a folder") from None
    except OSError as error:
        raise SmallFileError(error.strerror or str(error)) from None
    info = os.fstat(fd)
    reason = ("is a folder" if stat.S_ISDIR(info.st_mode)  # fdopen would raise for it, naming the fd
              else None if stat.S_ISREG(info.st_mode) else "is not a regular file (a FIFO, device or socket)")
    if reason is None and info.st_size > limit:
        reason = f"is {info.st_size} bytes, more than {limit}"
    if reason is not None:
        os.close(fd)
        raise SmallFileError(reason)
    with os.fdopen(fd, "rb") as stream:
        try:
            data = stream.read(limit + 1)
        except OSError as error:
            raise SmallFileError(error.strerror or str(error)) from None
    if len(data) > limit:
        raise SmallFileError(f"is more than {limit} bytes")
    return data


MAX_CA_BUNDLE = 16 * 1024 * 1024  # bytes; Debian's whole ca-certificates.crt is about 200 KB


def checked_ca_cert(_context: object, parameter: object, value: str | None) -> str | None:
    """A click callback for `--ca-cert FILE`: FILE must be a regular file (requests/OpenSSL would
    block on a FIFO for ever, and read a device until memory runs out) holding at least one PEM
    certificate OpenSSL loads. InputError (exit 2) names it."""
    if value is not None:
        try:
            data = read_small(value, MAX_CA_BUNDLE)
        except SmallFileError as error:
            raise InputError(f"--ca-cert {value}: {error}") from None
        # Checked here, as requests will load it: else garbage (a key, an empty file) surfaces as a
        # "TLS handshake failed, pass --ca-cert" network error (exit 4) that hides the wrong file.
        import ssl  # here: only --ca-cert needs it, and importing it costs every command start-up

        try:
            ssl.create_default_context().load_verify_locations(cadata=data.decode("latin-1"))
        except (ssl.SSLError, ValueError):
            raise InputError(f"--ca-cert {value}: holds no PEM certificate "
                             "(-----BEGIN CERTIFICATE-----)") from None
    return value


def read_regular(path: Path, limit: int, error: type[XarchError], fix: str) -> bytes:
    """read_small for a file that comes with a recipe (a lock, a trace record): FileNotFoundError
    when PATH does not exist (the caller says how to make it), else ERROR naming PATH, the reason
    and FIX (e.g. "run `xarch lock` again")."""
    if not os.path.lexists(path):
        raise FileNotFoundError(path)
    try:
        return read_small(path, limit)
    except SmallFileError as problem:
        raise error(f"{path}: {problem}; {fix}") from None
