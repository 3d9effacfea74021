"""`xarch verify --against REF|LAYOUT`: rebuild here, compare with what was published.

Each platform's manifest digest of a local rebuild is compared with the one the
published index names; only a full match proves the image came from this recipe.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from xarch.build import BuildInputs, build
from xarch.oci.digest import sha256_digest
from xarch.packages import ensure_lock
from xarch.platforms import Platform
from xarch.platforms import get as get_platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.store import Store
from xarch.summary import summarize_path


@dataclass(frozen=True)
class PlatformMatch:
    platform: str
    local: str
    published: str | None

    @property
    def matches(self) -> bool:
        return self.local == self.published


def published_of(against: str, insecure: bool) -> dict[str, str]:
    """{platform name: manifest digest} of a layout/archive on disk or a registry reference."""
    if Path(against).exists():
        summary = summarize_path(Path(against))
        return {get_platform(row.platform).name: row.manifest_digest for row in summary.images}
    from xarch.registry.client import Settings
    from xarch.registry.pull import published_digests

    return {get_platform(name).name: digest
            for name, digest in published_digests(against, settings=Settings(insecure=insecure)).items()}


def compare_with_published(loaded: LoadedRecipe, platforms: tuple[Platform, ...], against: str,
                           insecure: bool, reporter: Reporter) -> list[PlatformMatch]:
    published = published_of(against, insecure)
    epoch, _ = resolve_epoch(loaded)
    store = Store()
    lock = ensure_lock(loaded, locked=True, store=store, reporter=reporter)
    artifact = build(BuildInputs(loaded, platforms, epoch, lock, None, store), reporter)
    return [
        PlatformMatch(platform.name, sha256_digest(image.manifest_bytes), published.get(platform.name))
        for platform, image in zip(platforms, artifact.images, strict=True)
    ]


def print_matches(matches: list[PlatformMatch], against: str, as_json: bool, console: Console) -> None:
    if as_json:
        rows = [{**asdict(m), "matches": m.matches} for m in matches]
        print(json.dumps({"against": against, "identical": all(m.matches for m in matches),
                          "platforms": rows}, indent=2, sort_keys=True))
        return
    table = Table(title=f"rebuilt here vs {against}", title_justify="left")
    for column in ("platform", "rebuilt here", "published", "same"):
        table.add_column(column, no_wrap=column != "platform")
    for m in matches:
        table.add_row(m.platform, m.local, m.published or "(not published)", "yes" if m.matches else "NO")
    console.print(table)
