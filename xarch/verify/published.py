"""`xarch verify --against IMAGE`: a rebuild's whole index next to the published one.

The caller rebuilds (xarch.verify.against) and passes its index; this module reads the published
side (a registry, an OCI layout folder or an oci-archive: xarch.registry.imageref) and compares the
two both ways: the index digest, and every entry (platform with variant, media type, digest,
size, annotations). An entry only one side has is named on its own row (missing, extra,
duplicated); entries of one platform are paired exact match first, then in index order, so
two `unknown/unknown` attestation entries stay two rows. Identical only when nothing differs;
the one allowance is a platform of the recipe left out of the rebuild with --platform (then
the index itself cannot be compared, and the report says so).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xarch.errors import InputError
from xarch.oci.digest import platform_name
from xarch.oci.layout import LayoutReader
from xarch.oci.model import ImageIndex, images_of, layout_top
from xarch.oci.verified import json_object
from xarch.registry.auth import Credentials
from xarch.registry.client import Settings
from xarch.registry.imageref import OCI, OCI_ARCHIVE, REGISTRY, ImageRef
from xarch.registry.mediatypes import media_type_of
from xarch.registry.pull import fetch_image
from xarch.visible import visible

INDEX = "index"
SAME, DIFFERS = "same", "differs"
MISSING = "missing"  # rebuilt here, not in the published index
EXTRA = "extra"  # in the published index, not rebuilt by this recipe
DUPLICATED = "duplicated"  # a second published entry for a platform and digest already listed
NOT_REBUILT = "not rebuilt"  # a recipe platform left out with --platform: shown, not failed
NOT_COMPARED = "not compared"  # the index, when the rebuild was partial
ACCEPTED = (SAME, NOT_REBUILT, NOT_COMPARED)
COMPARED_FIELDS = ("mediaType", "digest", "size", "platform", "annotations")


@dataclass(frozen=True)
class IndexEntry:
    """One manifest descriptor of an index: POSITION in it, its platform name, the descriptor."""

    position: int
    platform: str
    descriptor: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.descriptor.get("digest", ""))


@dataclass
class Side:
    """An image as compared: the digest of its top (index, or lone manifest) and its entries."""

    label: str
    digest: str
    is_index: bool
    document: dict[str, Any] = field(default_factory=dict)  # the index JSON ({} for a lone manifest)
    entries: list[IndexEntry] = field(default_factory=list)


def side_of_index(label: str, digest: str, data: bytes) -> Side:
    """A Side from the exact bytes DATA of an OCI index (or Docker manifest list) with DIGEST.

    InputError (exit 2) when DATA is not an image index.
    """
    try:
        document = json_object(data, f"{label}: index {digest}")
        manifests = document.get("manifests") or []
        entries = [IndexEntry(i, _platform_of(d), dict(d)) for i, d in enumerate(manifests)]
    except (ValueError, AttributeError, TypeError):
        raise InputError(f"{label}: index {digest} is not a JSON image index") from None
    return Side(label, digest, True, document, entries)


def _platform_of(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform")
    return platform_name(platform) if isinstance(platform, dict) and platform else "(no platform)"


def _lone_manifest(label: str, digest: str, data: bytes, media_type: str,
                   platform: dict[str, Any]) -> Side:
    descriptor = {"mediaType": media_type, "digest": digest, "size": len(data), "platform": platform}
    return Side(label, digest, False, {}, [IndexEntry(0, platform_name(platform), descriptor)])


def published_side(ref: ImageRef, credentials: Credentials | None = None,
                   settings: Settings | None = None) -> Side:
    """The Side of REF: a registry image, an OCI layout folder or an oci-archive (every blob read is
    verified). Raises InputError/LayoutError for unreadable files, RegistryError for the registry."""
    if ref.kind == REGISTRY:
        assert ref.reference is not None
        pulled = fetch_image(ref.reference, credentials, settings, with_configs=False)
        if pulled.is_index:
            return side_of_index(ref.label, pulled.digest, pulled.data)
        [lone] = pulled.manifests
        platform = _config_platform(json_object(lone.config_data or b"{}", f"{ref}: config"))
        return _lone_manifest(ref.label, pulled.digest, pulled.data, pulled.media_type, platform)
    if ref.kind not in (OCI, OCI_ARCHIVE):
        raise InputError(f"--against {ref}: is a {ref.kind}, which holds no manifest or index to compare; "
                         "give an OCI layout, an oci-archive or a registry image")
    assert ref.path is not None
    reader = LayoutReader(ref.path)  # a folder or an oci-archive, read in place
    try:
        top = layout_top(reader)
        for image in images_of(top):
            image.verify()  # every blob of the published side checked, as a push would check it
        if isinstance(top, ImageIndex):
            return side_of_index(ref.label, top.digest, top.data)
        # A lone manifest: its platform is the config's, which must be a JSON object.
        config = json_object(top.config_bytes(), f"{ref}: config {top.config_descriptor.digest}")
        assert top.descriptor is not None and top.manifest_bytes is not None
        return _lone_manifest(ref.label, top.descriptor.digest, top.manifest_bytes,
                              media_type_of(top.manifest, top.descriptor.media_type or None),
                              _config_platform(config))
    finally:
        reader.close()


def _config_platform(config: dict[str, Any]) -> dict[str, Any]:
    return {key: config[key] for key in ("os", "architecture", "variant") if config.get(key)}


@dataclass
class AgainstRow:
    """One row of `verify --against`: a platform entry (or "index"), its digest rebuilt here and the
    published one (None when absent), the status (same, differs, missing, extra, duplicated, not
    rebuilt, not compared), what differs, and its 0-based place in each index.
    """

    platform: str  # "linux/amd64", "unknown/unknown", or "index"
    local: str | None  # digest rebuilt here
    published: str | None
    status: str
    detail: str = ""  # which fields differ, or why a row is missing/extra
    local_position: int | None = None  # place in the rebuilt index
    published_position: int | None = None


@dataclass
class AgainstReport:
    """The comparison of a rebuild with the published image AGAINST (as typed; KIND as taken by
    xarch.registry.imageref): one row per index entry and one for the index itself.
    """

    against: str  # what the user gave
    kind: str = ""  # what it was taken for (xarch.registry.imageref)
    rows: list[AgainstRow] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return bool(self.rows) and all(row.status in ACCEPTED for row in self.rows)

    @property
    def differences(self) -> list[AgainstRow]:
        return [row for row in self.rows if row.status not in ACCEPTED]

    def to_json(self) -> dict[str, Any]:
        """{against, kind, identical, rows: [row fields]}, as `verify --against --json` prints it."""
        return {"against": self.against, "kind": self.kind, "identical": self.identical,
                "rows": [asdict(r) for r in self.rows]}


def _fields_differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Descriptor fields that differ; annotations named key by key."""
    differing: list[str] = []
    for key in COMPARED_FIELDS:
        if key == "annotations":
            mine, theirs = a.get(key) or {}, b.get(key) or {}
            keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            differing.extend(f"annotation {k}" for k in keys)
        elif a.get(key) != b.get(key):
            differing.append(key)
    extra_keys = sorted((set(a) ^ set(b)) - set(COMPARED_FIELDS))
    differing.extend(extra_keys)
    return differing


def _pair(local: list[IndexEntry], published: list[IndexEntry]
          ) -> tuple[list[tuple[IndexEntry, IndexEntry]], list[IndexEntry], list[IndexEntry]]:
    """Pairs of one platform's entries: identical descriptors first, then by position; the rest."""
    mine, theirs = list(local), list(published)
    pairs = []
    for entry in list(mine):
        match = next((other for other in theirs if other.descriptor == entry.descriptor), None)
        if match is not None:
            pairs.append((entry, match))
            mine.remove(entry)
            theirs.remove(match)
    while mine and theirs:
        pairs.append((mine.pop(0), theirs.pop(0)))
    return pairs, mine, theirs


def compare(local: Side, published: Side, against: str = "", kind: str = "",
            not_rebuilt: frozenset[str] = frozenset()) -> AgainstReport:
    """Rows: every platform's entries (the rebuild's order, then published-only ones), then the index.

    NOT_REBUILT: platform names of the recipe that this rebuild left out (--platform); their
    published entries are shown as such, and the index digest is then not compared.
    """
    report = AgainstReport(against or published.label, kind)
    order: list[str] = []
    for entry in [*local.entries, *published.entries]:
        if entry.platform not in order:
            order.append(entry.platform)
    for name in order:
        mine = [e for e in local.entries if e.platform == name]
        theirs = [e for e in published.entries if e.platform == name]
        pairs, only_local, only_published = _pair(mine, theirs)
        for a, b in sorted(pairs, key=lambda pair: pair[0].position):
            differing = _fields_differing(a.descriptor, b.descriptor)
            report.rows.append(AgainstRow(name, a.digest, b.digest, DIFFERS if differing else SAME,
                                          ", ".join(differing), a.position, b.position))
        for a in only_local:
            report.rows.append(AgainstRow(name, a.digest, None, MISSING,
                                          "rebuilt here, not in the published index", a.position, None))
        for b in only_published:
            seen = [p for _, p in pairs] + [e for e in theirs if e.position < b.position]
            if name in not_rebuilt and not mine:
                status, detail = NOT_REBUILT, "left out of this rebuild (--platform)"
            elif any(e.descriptor.get("digest") == b.digest for e in seen if e is not b):
                status, detail = DUPLICATED, f"a second entry for {name} with the same digest"
            else:
                status, detail = EXTRA, "published, but this recipe's rebuild has no such entry"
            report.rows.append(AgainstRow(name, None, b.digest, status, detail, None, b.position))
    if not_rebuilt:
        report.rows.append(AgainstRow(INDEX, local.digest, published.digest, NOT_COMPARED,
                                      "partial rebuild (--platform): the index cannot be the same"))
    else:
        report.rows.append(AgainstRow(INDEX, local.digest, published.digest,
                                      SAME if local.digest == published.digest else DIFFERS,
                                      _index_detail(local, published)))
    return report


def _index_detail(local: Side, published: Side) -> str:
    if local.digest == published.digest:
        return ""
    if not published.is_index:
        return "published is a single manifest, not an index"
    what = []
    for key in sorted((set(local.document) | set(published.document)) - {"manifests"}):
        if local.document.get(key) != published.document.get(key):
            what.append("annotations" if key == "annotations" else key)
    if [e.descriptor for e in local.entries] != [e.descriptor for e in published.entries]:
        what.append("entries")
    return ", ".join(what) or "bytes (same content, other encoding)"


def verify_against(local: Side, ref: ImageRef, credentials: Credentials | None = None,
                   settings: Settings | None = None,
                   not_rebuilt: frozenset[str] = frozenset()) -> AgainstReport:
    """Compare the rebuild LOCAL with the image REF names (see compare)."""
    return compare(local, published_side(ref, credentials, settings), ref.text, ref.kind, not_rebuilt)


def print_against(report: AgainstReport, as_json: bool, console: Console) -> None:
    """Print REPORT on CONSOLE: one JSON document with AS_JSON, else a table of the rows, the verdict
    line, and each difference on its own line (the exit code is the caller's: 1 when not identical).
    """
    if as_json:
        console.print_json(json.dumps(report.to_json(), sort_keys=True))
        return
    table = Table(title=Text(visible(f"xarch verify --against {report.against} ({report.kind})")),
                  title_justify="left")
    # Four columns: two full digests fit a 200-column pipe; each difference's detail follows below.
    for column in ("platform", "rebuilt here", "published", "result"):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        outcome = row.status if row.status in ACCEPTED else row.status.upper()
        table.add_row(*(Text(visible(cell)) for cell in (row.platform, row.local or "-", row.published or "-",
                                                           outcome)))
    console.print(table)
    if report.identical:
        console.print("the published image is what this recipe builds", highlight=False)
        return
    console.print(f"does NOT match: {len(report.differences)} difference(s)", highlight=False)
    for row in report.differences:  # each on its own line, whatever the table's width
        where = row.platform if row.platform == INDEX else f"{row.platform} entry"
        line = f"  {row.status.upper()}: {where} {row.published or row.local} {row.detail}".rstrip()
        console.print(visible(line), highlight=False, markup=False)
