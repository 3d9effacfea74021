"""Unified diffs of small changed text files, for `xarch diff` (difflib, as `diff -u` prints them).

A file whose content differs between A and B gets a unified diff when both sides are regular
files of at most TEXT_LIMIT bytes, UTF-8 and without NUL bytes; anything else (binary, large)
stays a digest line. At most MAX_TEXT_DIFFS files a layer pair are shown this way. The two
layers are streamed once more for these files only (the first pass keeps digests, not bytes).
"""

from __future__ import annotations

import difflib
import tarfile
from collections.abc import Iterable

from xarch.diff.sources import DiffError, LayerRef

TEXT_LIMIT = 64 * 1024  # bytes a side
MAX_TEXT_DIFFS = 20


def contents(layer: LayerRef, wanted: set[str], limit: int | None = TEXT_LIMIT) -> dict[str, bytes]:
    """The content of each regular file of LAYER whose (relative) path is in WANTED and whose
    size is at most LIMIT bytes (None: any size).

    Returns {path: bytes}. A layer that cannot be read raises DiffError (exit 2).
    """
    found: dict[str, bytes] = {}
    with layer.open_tar() as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    name = member.name.removeprefix("./").rstrip("/")
                    if name in wanted and member.isreg() and (limit is None or member.size <= limit):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            found[name] = handle.read()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DiffError(f"layer {layer.position} ({layer.digest}): unreadable ({error})") from None
    return found


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unified(path: str, a: bytes, b: bytes, label_a: str = "a", label_b: str = "b") -> str | None:
    """`diff -u` of A and B (the contents of PATH), or None when either side is not text."""
    text_a, text_b = _text(a), _text(b)
    if text_a is None or text_b is None:
        return None
    lines: Iterable[str] = difflib.unified_diff(text_a.splitlines(keepends=True),
                                                text_b.splitlines(keepends=True),
                                                f"{label_a}/{path}", f"{label_b}/{path}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
