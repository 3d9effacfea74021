"""JSON for names that are bytes: file names in images need not be UTF-8.

xarch reads such names with Python's surrogateescape (a byte 0xff becomes U+DCFF), which keeps
them exact inside xarch but not in JSON: `json.dumps` writes the lone surrogate as "\\udcff",
which is not Unicode, and jq and most parsers turn it into U+FFFD, losing the byte. Here a
string that holds such bytes is written as its UTF-8 reading with U+FFFD for each bad byte (what
jq would show anyway), and its exact bytes are given beside it, base64-encoded, under the same
key with `_base64` added (RFC 4648), so a consumer can tell and recover the name.
"""

from __future__ import annotations

import base64
from typing import Any

from xarch.oci.tree import is_utf8, path_bytes


def readable(text: str) -> str:
    """TEXT with every byte that was not UTF-8 shown as U+FFFD."""
    return path_bytes(text).decode("utf-8", "replace")


def exact(value: Any) -> Any:
    """VALUE (dicts, lists, tuples, strings, numbers…) ready for json.dumps: every string holding
    bytes that were not UTF-8 made readable; in a dict, its exact bytes also under KEY_base64."""
    if isinstance(value, str):
        return value if is_utf8(value) else readable(value)
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            result[exact(key)] = exact(item)
            if isinstance(item, str) and not is_utf8(item):
                result[f"{key}_base64"] = base64.b64encode(path_bytes(item)).decode()
        return result
    if isinstance(value, (list, tuple)):
        return [exact(item) for item in value]
    return value
