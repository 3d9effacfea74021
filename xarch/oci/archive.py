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
        every = tar.getmembers()
        ended = _has_end_marker(tar)
    except (tarfile.TarError, EOFError, OSError) as error:
        tar.close()
        raise ArchiveError(f"{path}: truncated or corrupt tar archive ({_first_line(error)})") from None
    if not ended:
        tar.close()
        raise ArchiveError(f"{path}: truncated tar archive (it ends without the end-of-archive blocks)")
    try:
        _check_names(path, every)
    except ArchiveError:
        tar.close()
        raise
    return tar, {member_name(m): m for m in every if m.isfile()}


def member_name(member: tarfile.TarInfo) -> str:
    """MEMBER's name as readers look it up, as `tar -x` would place it: empty and "." parts
    dropped (`./index.json`, `.//index.json` and `index.json/` are `index.json`;
    `blobs//sha256/x` is `blobs/sha256/x`), so two spellings of one path are one name."""
    return "/".join(part for part in member.name.split("/") if part not in ("", "."))


def _check_names(path: Path, members: list[tarfile.TarInfo]) -> None:
    """ArchiveError for a member that could land outside the folder it is unpacked into (an
    absolute name, a `..` part), or whose name tar programs read differently (_ambiguous), or a
    name held by two members: a reader would take the last, `tar -x` would overwrite, and what the
    archive means would depend on who reads it. Two folder entries of one name are harmless and
    allowed. A member below another that is no folder (`d/index.json` after a symlink `d -> .`)
    is refused too: `tar -x` writes through the link, a reader by name does not."""
    seen: dict[str, tarfile.TarInfo] = {}
    for member in members:
        if member.name.startswith("/") or ".." in member.name.split("/"):
            raise ArchiveError(f"{path}: unsafe member {member.name!r} in the archive")
        ambiguous = _ambiguous(member)
        if ambiguous:
            raise ArchiveError(f"{path}: member {member.name!r} {ambiguous}: tar programs read it "
                               "as different files")
        name = member_name(member)
        earlier = seen.get(name)
        if earlier is not None and not (earlier.isdir() and member.isdir()):
            raise ArchiveError(f"{path}: member {name!r} appears twice in the archive")
        seen[name] = member
    for name in seen:
        parts = name.split("/")
        for end in range(1, len(parts)):
            above = seen.get("/".join(parts[:end]))
            if above is not None and not above.isdir():
                raise ArchiveError(f"{path}: member {name!r} lies below {above.name!r}, which is "
                                   f"{member_kind(above)}, not a folder")


def _ambiguous(member: tarfile.TarInfo) -> str:
    """Why MEMBER's headers name it in more than one way, or "". Python's tarfile and GNU tar
    disagree on which name wins when a GNU long name and a pax `path`, or a pax `path` and
    `GNU.sparse.name`, both name it, and on a NUL inside a name (GNU tar cuts the name there):
    such a member would be one file to xarch and another to `tar -x`, skopeo or Docker."""
    if "\0" in member.name or "\0" in member.linkname:
        return "holds a NUL byte in its name"
    headers = member.pax_headers
    for keyword in ("path", "GNU.sparse.name"):
        if keyword in headers and headers[keyword] != member.name:
            return f"is also named {headers[keyword]!r} (pax {keyword})"
    if "linkpath" in headers and headers["linkpath"] != member.linkname:
        return f"links also to {headers['linkpath']!r} (pax linkpath)"
    return ""


def member_kind(member: tarfile.TarInfo) -> str:
    """What MEMBER is, in words ("a symlink", "a FIFO"...), for a message that needs a regular file."""
    if member.issym():
        return f"a symlink (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.isdir():
        return "a folder"
    if member.isfifo():
        return "a FIFO"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfile():
        return "a regular file"
    return "an unknown kind of member"


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
