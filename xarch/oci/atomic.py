"""Outputs appear whole or not at all: write beside the target, then rename.

Staging names are `.NAME.tmp-XXXXXXXX` (the new output) and `.NAME.old-XXXXXXXX` (the old
one on its way out), XXXXXXXX being tempfile's 8 random characters. The writer holds an
flock(2) on each while it lives; the kernel drops it when the process dies, even by SIGKILL.
So the next write to NAME removes the siblings nobody holds: what killed builds left, and
never another running build's staging nor any file that is not one of these names.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# A leftover must be at least this old: a live writer takes its lock right after mkdtemp/mkstemp,
# so a younger entry may simply not be locked yet.
LEFTOVER_MIN_AGE = 1.0


def _staging_name(name: str) -> re.Pattern[str]:
    # tempfile's random part: 8 characters of [a-z0-9_] (tempfile._RandomNameSequence).
    return re.compile(rf"^\.{re.escape(name)}\.(?:tmp|old)-[a-z0-9_]{{8}}$")


def _hold(path: str) -> int:
    """Open PATH and take an exclusive flock on it; the fd is the proof that this process is alive."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def remove_leftovers(target: Path) -> list[Path]:
    """Remove `.TARGET.tmp-*`/`.TARGET.old-*` siblings of TARGET that no live writer holds.

    Returns what was removed. Only names of exactly atomic_dir/atomic_file's shape are looked
    at; an entry younger than LEFTOVER_MIN_AGE seconds or locked by a live process is kept.
    """
    target = Path(target)
    pattern = _staging_name(target.name)
    removed: list[Path] = []
    try:
        siblings = list(os.scandir(target.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in siblings:
        if not pattern.match(entry.name):
            continue
        try:
            if entry.is_symlink() or now - entry.stat(follow_symlinks=False).st_mtime < LEFTOVER_MIN_AGE:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live build's staging
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _checked(target: Path) -> Path:
    target = Path(target)
    if target.name in ("", ".", ".."):
        # `.` or `..` cannot be renamed aside; callers (xarch.build.outputs) refuse such outputs first.
        raise ValueError(f"{target}: an output needs a name of its own, not . or ..")
    return target


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside TARGET; on success it replaces TARGET.

    An interrupted build leaves the old output (or none), never a partial one: the old
    folder is renamed aside, the new one renamed in, then the old one removed. Leftovers of
    earlier killed writers to TARGET are removed first. Raises ValueError for `.`/`..`.
    """
    target = _checked(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    locks = [_hold(str(staging))]
    try:
        yield staging
        os.chmod(staging, 0o755)
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            locks.append(_hold(str(old)))
            os.rename(target, old / "x")
            os.rename(staging, target)
            shutil.rmtree(old)
        else:
            os.rename(staging, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        name_the_path(error, target)
        raise
    finally:
        for fd in locks:
            os.close(fd)


@contextmanager
def atomic_file(target: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file beside TARGET; on success it is renamed onto TARGET with MODE.

    The one way xarch replaces a file: a reader sees the old file or the new one, never half.

    Leftovers of earlier killed writers to TARGET are removed first. Raises ValueError for `.`/`..`.
    """
    target = _checked(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    # The write handle's own open file description carries the lock (flock is per description).
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.chmod(tmp_name, mode)
            os.replace(tmp_name, target)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        name_the_path(error, target)
        raise


def name_the_path(error: BaseException, path: Path) -> None:
    """Give an OSError that names no file (a write() on a full disk) PATH, so the one-line
    error the CLI prints says which output or cache entry could not be written."""
    if isinstance(error, OSError) and error.filename is None:
        error.filename = str(path)
