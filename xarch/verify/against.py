"""`xarch verify --against IMAGE`: rebuild here, then compare with what was published.

The rebuild happens in this process under the recipe's own conditions and lock
(`--locked`: a published image is only checked against the inputs it was built from);
xarch.verify.published reads the published side and compares the whole index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from xarch import platforms as platform_data
from xarch.build.packages import ensure_lock
from xarch.build.pipeline import BuildInputs, build
from xarch.oci.digest import sha256_digest
from xarch.oci.store import Store
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.summary import platform_name
from xarch.verify.published import Side, side_of_index

if TYPE_CHECKING:
    from xarch.registry.client import Settings
    from xarch.registry.imageref import ImageRef


def published_strategies(ref: ImageRef, settings: Settings | None = None) -> dict[str, dict[str, str]]:
    """platform name ("arm64") → stage → the strategy the published image recorded
    (xarch.build.stages.strategy_record in each config's history): a registry image, an OCI
    layout or an oci-archive. Raises what reading REF raises (RegistryError, LayoutError)."""
    from xarch.build.stages import parse_strategy_records
    from xarch.registry.imageref import REGISTRY

    configs: list[bytes] = []
    if ref.kind == REGISTRY:
        from xarch.registry.pull import fetch_image

        assert ref.reference is not None
        pulled = fetch_image(ref.reference, None, settings)
        configs = [m.config_data for m in pulled.manifests if m.config_data]
    elif ref.path is not None:
        from xarch.oci.layout import LayoutReader
        from xarch.oci.model import images_of, layout_top

        reader = LayoutReader(ref.path)  # a folder or an oci-archive, read in place
        try:
            configs = [image.config_bytes() for image in images_of(layout_top(reader))]
        finally:
            reader.close()
    found: dict[str, dict[str, str]] = {}
    for data in configs:
        config = json.loads(data)
        if not config.get("architecture"):
            continue  # an attestation or another artifact: no platform, no stages
        try:
            plat = platform_data.get(platform_name(config))
        except platform_data.UnknownPlatform:
            continue
        found[plat.name] = parse_strategy_records(config.get("history") or [])
    return found


def rebuilt_side(loaded: LoadedRecipe, platforms: tuple[Platform, ...], reporter: Reporter,
                 strategy: str | None = None, recorded: dict[str, dict[str, str]] | None = None) -> Side:
    """The index of a fresh local build (no cache) of PLATFORMS, as xarch.verify.published compares it.

    RECORDED (published_strategies): each stage runs with the strategy the published image
    used; STRATEGY (--strategy) must then agree, else StrategyUnavailable names the stage."""
    epoch, _ = resolve_epoch(loaded)
    store = Store()
    lock = ensure_lock(loaded, locked=True, store=store, reporter=reporter)
    python = None
    if loaded.recipe.python is not None:
        from xarch.build.python import ensure_python_lock

        python = ensure_python_lock(loaded, lock, locked=True, reporter=reporter)
    from xarch.build.python_stages import ensure_stage_locks

    stage_python = ensure_stage_locks(loaded, lock, locked=True, reporter=reporter)
    # use_cache=False: the publication is compared with a rebuild, never with a cache entry.
    inputs = BuildInputs(loaded, platforms, epoch, lock, strategy, store, use_cache=False,
                         recorded=recorded or {}, python=python, stage_python=stage_python)
    artifact = build(inputs, reporter)
    return side_of_index("this rebuild", sha256_digest(artifact.index_bytes), artifact.index_bytes)
