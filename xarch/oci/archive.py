"""Open a tar archive a user names (oci-archive, docker-archive) and index its members.

Every reader of such archives (inspect, diff, load, push) goes through `open_archive`, so a
file that is not a tar, or a tar cut short, is one error naming the file, never tarfile's
multi-line list of the decompressors it tried.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import IO

from xarch.errors import InputError


class ArchiveError(InputError):
    """PATH is not a tar archive, or is truncated or corrupt (exit 2)."""


def open_archive(path: Path) -> tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]:
    """The open tar at PATH and its regular files by name ("./" dropped).

    Reads every header now (seeking over the data of an uncompressed tar), so a truncated
    archive fails here. Raises ArchiveError naming PATH.
    """
    try:
        tar = tarfile.open(path)
    except tarfile.TarError:
        raise ArchiveError(f"{path}: not a tar archive") from None
    except OSError as error:
        raise ArchiveError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        ended = _has_end_marker(tar)
    except (tarfile.TarError, EOFError, OSError) as error:
        tar.close()
        raise ArchiveError(f"{path}: truncated or corrupt tar archive ({_first_line(error)})") from None
    if not ended:
        tar.close()
        raise ArchiveError(f"{path}: truncated tar archive (it ends without the end-of-archive blocks)")
    return tar, members


def _has_end_marker(tar: tarfile.TarFile) -> bool:
    """Whether zero blocks follow the last member, as POSIX ustar/pax requires of an archive.

    tarfile takes a file cut exactly between two members for a complete archive; the end
    marker is what tells them apart. Only checked for an uncompressed tar (what oci- and
    docker-archives are), whose end can be read by seeking.
    """
    if tar.fileobj is None or not isinstance(tar.fileobj, io.BufferedReader):
        return True
    tar.fileobj.seek(tar.offset)
    block = tar.fileobj.read(tarfile.BLOCKSIZE)
    return len(block) == tarfile.BLOCKSIZE and not any(block)


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    """All bytes of MEMBER; ArchiveError naming PATH and the member when the archive is cut short."""
    handle: IO[bytes] | None = tar.extractfile(member)
    if handle is None:
        raise ArchiveError(f"{path}: {member.name} is not a regular file")
    try:
        data = handle.read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"{path}: {member.name}: truncated or corrupt ({_first_line(error)})") from None
    if len(data) != member.size:
        raise ArchiveError(f"{path}: {member.name}: truncated ({len(data)} of {member.size} bytes)")
    return data


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
