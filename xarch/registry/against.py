"""`xarch verify --against REF|LAYOUT`: a local build's digests next to what was published.

The caller rebuilds (xarch.verify) and passes its digests ({"index": …, "linux/amd64": …});
this module reads the published side (registry index, or an OCI layout on disk), lines the
two up per platform and says whether they match. Exit 0 only when every rebuilt platform
matches and nothing rebuilt is missing from the published image.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from xarch.oci.verified import json_object
from xarch.registry.auth import Credentials
from xarch.registry.client import Settings
from xarch.registry.errors import LayoutError
from xarch.registry.layout_source import read_layout
from xarch.registry.mediatypes import platform_name
from xarch.registry.pull import fetch_image

INDEX = "index"
SAME, DIFFERS, NOT_PUBLISHED, NOT_REBUILT = "same", "differs", "not published", "not rebuilt"


@dataclass
class AgainstRow:
    platform: str
    local: str | None
    published: str | None
    status: str


@dataclass
class AgainstReport:
    against: str
    rows: list[AgainstRow] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        # A published platform that was not rebuilt (--platform subset) is shown, not failed.
        return bool(self.rows) and all(row.status in (SAME, NOT_REBUILT) for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"against": self.against, "identical": self.identical, "rows": [asdict(r) for r in self.rows]}


def published_side(target: str, credentials: Credentials | None = None,
                   settings: Settings | None = None) -> dict[str, str]:
    """{"index": digest, "linux/amd64": manifest digest, …} of a registry reference or an OCI layout path."""
    path = Path(target)
    if path.is_dir():
        image = read_layout(path)
        result = {platform_name(_platform(image, m)): m.digest for m in image.manifests}
        if image.is_index:
            result[INDEX] = str(image.top_descriptor["digest"])
        return result
    pulled = fetch_image(target, credentials, settings, with_configs=False)
    result = {manifest.platform_name: manifest.digest for manifest in pulled.manifests}
    if pulled.is_index:
        result[INDEX] = pulled.digest
    return result


def _platform(image: Any, manifest: Any) -> dict[str, Any]:
    platform = manifest.descriptor.get("platform")
    if isinstance(platform, dict) and platform:
        return dict(platform)
    if platform:
        raise LayoutError(f"{image.root}: the platform of {manifest.digest} is not a JSON object")
    config = manifest.json["config"]["digest"]  # read_layout checked the descriptor and the blob
    try:
        return dict(json_object(image.blob_path(config).read_bytes(), f"{image.root}: config {config}"))
    except OSError:
        raise LayoutError(f"{image.root}: config {config} of {manifest.digest} is unreadable") from None


def compare(local: dict[str, str], published: dict[str, str], against: str) -> AgainstReport:
    """Rows per platform (LOCAL's order, then published-only ones), and the index when comparable."""
    report = AgainstReport(against)
    local_platforms = [key for key in local if key != INDEX]
    published_platforms = [key for key in published if key != INDEX]
    for name in local_platforms:
        theirs = published.get(name)
        status = NOT_PUBLISHED if theirs is None else SAME if theirs == local[name] else DIFFERS
        report.rows.append(AgainstRow(name, local[name], theirs, status))
    for name in published_platforms:
        if name not in local:
            report.rows.append(AgainstRow(name, None, published[name], NOT_REBUILT))
    # The index only means something when the same platforms were built on both sides.
    if INDEX in local and INDEX in published and sorted(local_platforms) == sorted(published_platforms):
        status = SAME if local[INDEX] == published[INDEX] else DIFFERS
        report.rows.append(AgainstRow(INDEX, local[INDEX], published[INDEX], status))
    return report


def verify_against(local: dict[str, str], target: str, credentials: Credentials | None = None,
                   settings: Settings | None = None) -> AgainstReport:
    """Compare a rebuild's digests LOCAL with TARGET (registry reference or OCI layout folder)."""
    return compare(local, published_side(target, credentials, settings), target)


def print_against(report: AgainstReport, as_json: bool, console: Console) -> None:
    if as_json:
        console.print_json(json.dumps(report.to_json(), sort_keys=True))
        return
    table = Table(title=f"xarch verify --against {report.against}", title_justify="left")
    for column in ("platform", "rebuilt here", "published", "result"):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        outcome = row.status if row.status in (SAME, NOT_REBUILT) else row.status.upper()
        table.add_row(row.platform, row.local or "-", row.published or "-", outcome)
    console.print(table)
    verdict = "the published image is what this recipe builds" if report.identical else "does NOT match"
    console.print(verdict, highlight=False)
