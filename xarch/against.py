"""`xarch verify --against IMAGE`: rebuild here, then compare with what was published.

The rebuild happens in this process under the recipe's own conditions and lock
(`--locked`: a published image is only checked against the inputs it was built from);
xarch.registry.against reads the published side and compares the whole index.
"""

from __future__ import annotations

from xarch.build import BuildInputs, build
from xarch.oci.digest import sha256_digest
from xarch.packages import ensure_lock
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.registry.against import Side, side_of_index
from xarch.store import Store


def rebuilt_side(loaded: LoadedRecipe, platforms: tuple[Platform, ...], reporter: Reporter) -> Side:
    """The index of a fresh local build (no cache) of PLATFORMS, as xarch.registry.against compares it."""
    epoch, _ = resolve_epoch(loaded)
    store = Store()
    lock = ensure_lock(loaded, locked=True, store=store, reporter=reporter)
    # use_cache=False: the publication is compared with a rebuild, never with a cache entry.
    artifact = build(BuildInputs(loaded, platforms, epoch, lock, None, store, use_cache=False), reporter)
    return side_of_index("this rebuild", sha256_digest(artifact.index_bytes), artifact.index_bytes)
