"""`xarch verify --against REF|LAYOUT`: rebuild here, then compare with what was published.

The rebuild happens in this process under the recipe's own conditions and lock
(`--locked`: a published image is only checked against the inputs it was built from);
xarch.registry.against reads the published side and lines the digests up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from xarch import platforms as platform_data
from xarch.build import BuildInputs, build
from xarch.oci.digest import sha256_digest
from xarch.packages import ensure_lock
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.store import Store

if TYPE_CHECKING:
    from xarch.registry.client import Settings
from xarch.summary import platform_name


def published_strategies(target: str, settings: Settings | None = None) -> dict[str, dict[str, str]]:
    """platform name ("arm64") → stage → the strategy the published image recorded
    (xarch.stages.strategy_record in its config's history), for a registry reference or a layout."""
    from xarch.stages import parse_strategy_records

    configs: list[bytes] = []
    if Path(target).is_dir():
        from xarch.registry.layout_source import read_layout

        image = read_layout(Path(target))
        configs = [image.blob_path(m.json["config"]["digest"]).read_bytes() for m in image.manifests]
    else:
        from xarch.registry.pull import fetch_image

        pulled = fetch_image(target, None, settings)
        configs = [m.config_data for m in pulled.manifests if m.config_data]
    found: dict[str, dict[str, str]] = {}
    for data in configs:
        config = json.loads(data)
        if not config.get("architecture"):
            continue  # an attestation or another artifact: no platform, no stages
        name = platform_name(config)
        try:
            plat = platform_data.get(name)
        except platform_data.UnknownPlatform:
            continue
        found[plat.name] = parse_strategy_records(config.get("history") or [])
    return found


def rebuilt_digests(
    loaded: LoadedRecipe, platforms: tuple[Platform, ...], reporter: Reporter,
    strategy: str | None = None, recorded: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    """{"index": digest, "linux/amd64": manifest digest, …} of a fresh local build.

    RECORDED (published_strategies): each stage runs with the strategy the published image
    used; STRATEGY (--strategy) must then agree, else StrategyUnavailable names the stage."""
    epoch, _ = resolve_epoch(loaded)
    store = Store()
    lock = ensure_lock(loaded, locked=True, store=store, reporter=reporter)
    # use_cache=False: the publication is compared with a rebuild, never with a cache entry.
    inputs = BuildInputs(loaded, platforms, epoch, lock, strategy, store, use_cache=False,
                         recorded=recorded or {})
    artifact = build(inputs, reporter)
    digests = {"index": sha256_digest(artifact.index_bytes)}
    for image in artifact.images:
        digests[platform_name(image.platform)] = sha256_digest(image.manifest_bytes)
    return digests
