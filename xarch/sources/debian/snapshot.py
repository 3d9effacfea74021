"""`xarch lock --snapshot latest|TIMESTAMP`: move a time-pinned archive, in the recipe.

The pin stays in the recipe (sources.debian[].snapshot), because the recipe is what the
lock's input digest is made from: a moved pin kept only in the lock would make every
`--locked` build fail. The recipe is rewritten minimally: only the text of each `snapshot:`
value changes (its quoting kept), every other byte, comment and blank line stays.

`latest` is read from the snapshot service's listing of the archive (the folder above the
timestamp): the newest `YYYYMMDDTHHMMSSZ/` link not in the future. snapshot.debian.org lists
months there (`?year=Y&month=M`), and the timestamps of a month on that month's page; both
forms are read. Several archives (debian, debian-security) get one timestamp, the newest
of theirs: snapshot.debian.org serves, for any timestamp, the archive as it was then.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from xarch.oci.atomic import atomic_file
from xarch.sources.debian.config import SNAPSHOT_ROOT, DebianSource, is_snapshot_timestamp
from xarch.sources.debian.errors import LockError

TIMESTAMP = re.compile(r"^\d{8}T\d{6}Z$")
_LINKED = re.compile(r"""href=["']?(?:[^"'>]*/)?(\d{8}T\d{6}Z)/?["'>]""")
_MONTH = re.compile(r"year=(\d{4})(?:;|&amp;|&)month=(\d{1,2})")


def listing_url(source: DebianSource) -> str:
    """The folder whose listing names SOURCE's snapshot timestamps (with a trailing slash)."""
    mirror = source.mirror_url()
    if "{snapshot}" in mirror:
        return mirror.split("{snapshot}", 1)[0].rstrip("/") + "/"
    archive = mirror.rstrip("/").rsplit("/", 1)[-1] or "debian"
    return f"{SNAPSHOT_ROOT}/{archive}/"


def timestamps_in(html: str) -> list[str]:
    """The snapshot timestamps (YYYYMMDDTHHMMSSZ) HTML links to as folders, sorted, each once."""
    return sorted(set(_LINKED.findall(html)))


def latest_timestamp(sources: Sequence[DebianSource], now: datetime | None = None) -> str:
    """The newest snapshot timestamp, not after NOW, of the SOURCES that are time-pinned.
    Raises DownloadError (exit 4) when a listing cannot be fetched, LockError (exit 2) when
    no source is time-pinned or a listing names no timestamp."""
    from xarch.sources.debian import http

    moment = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    newest: list[str] = []
    for url in dict.fromkeys(listing_url(s) for s in sources if s.snapshot is not None):
        page = http.get_bytes(url).decode("utf-8", "replace")
        found = timestamps_in(page)
        months = sorted({(int(y), int(m)) for y, m in _MONTH.findall(page)})
        if not found and months:
            year, month = months[-1]
            month_page = http.get_bytes(f"{url}?year={year}&month={month}")
            found = timestamps_in(month_page.decode("utf-8", "replace"))
        found = [stamp for stamp in found if stamp <= moment]
        if not found:
            raise LockError(f"--snapshot latest: {url} lists no snapshot timestamp (YYYYMMDDTHHMMSSZ/)")
        newest.append(found[-1])
    if not newest:
        raise LockError("--snapshot: sources.debian sets no snapshot; add `snapshot: YYYYMMDDTHHMMSSZ` "
                        "to the archives to pin in time")
    return max(newest)


def check_timestamp(value: str) -> str:
    """VALUE, when it is a snapshot timestamp like 20250520T000000Z; else LockError (exit 2)."""
    if not is_snapshot_timestamp(value):
        raise LockError(f"--snapshot {value!r}: not `latest` nor a timestamp like 20250520T000000Z")
    return value


def snapshot_nodes(text: str) -> list[yaml.ScalarNode]:
    """The value nodes of sources.debian(.snapshot | [i].snapshot) in recipe TEXT, unset ones
    left out. Raises yaml.YAMLError when TEXT is not YAML."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    debian = _child(_child(root, "sources"), "debian")
    items = debian.value if isinstance(debian, yaml.SequenceNode) else [debian]
    found = [_child(item, "snapshot") for item in items]
    return [node for node in found
            if isinstance(node, yaml.ScalarNode) and node.value not in ("", "null", "~")]


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
    return None


def rewrite(text: str, timestamp: str) -> str:
    """TEXT with every sources.debian snapshot value set to TIMESTAMP, nothing else changed.
    Raises LockError (exit 2) when TEXT sets no snapshot, yaml.YAMLError when it is not YAML."""
    nodes = snapshot_nodes(text)
    if not nodes:
        raise LockError("--snapshot: the recipe sets no sources.debian snapshot; add "
                        "`snapshot: YYYYMMDDTHHMMSSZ` to the archives to pin in time")
    for node in sorted(nodes, key=lambda n: n.start_mark.index, reverse=True):
        quote = node.style if node.style in ("'", '"') else ""
        start, end = node.start_mark.index, node.end_mark.index
        text = text[:start] + f"{quote}{timestamp}{quote}" + text[end:]
    return text


def write_recipe(path: Path, text: str) -> None:
    """Replace PATH atomically by TEXT (UTF-8), keeping its mode. Raises OSError when PATH
    cannot be stat'ed or replaced."""
    mode = path.stat().st_mode & 0o7777
    with atomic_file(path, mode) as handle:
        handle.write(text.encode("utf-8"))
