"""`xarch verify --against IMAGE`: rebuild here, then compare with what was published.

The rebuild happens in this process under the recipe's own conditions and lock
(`--locked`: a published image is only checked against the inputs it was built from);
xarch.verify.published reads the published side and compares the whole index.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
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
    from xarch.registry.imageref import OCI_ARCHIVE, REGISTRY

    configs: list[bytes] = []
    if ref.kind == REGISTRY:
        from xarch.registry.pull import fetch_image

        assert ref.reference is not None
        pulled = fetch_image(ref.reference, None, settings)
        configs = [m.config_data for m in pulled.manifests if m.config_data]
    elif ref.path is not None:
        from xarch.registry.layout_source import layout_folder, read_layout

        with ExitStack() as stack:
            folder = stack.enter_context(layout_folder(ref.path)) if ref.kind == OCI_ARCHIVE else ref.path
            image = read_layout(folder)
            configs = [image.blob_path(m.json["config"]["digest"]).read_bytes() for m in image.manifests]
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
