"""`xarch verify --against REF|LAYOUT`: rebuild here, then compare with what was published.

The rebuild happens in this process under the recipe's own conditions and lock
(`--locked`: a published image is only checked against the inputs it was built from);
xarch.registry.against reads the published side and lines the digests up.
"""

from __future__ import annotations

from xarch.build import BuildInputs, build
from xarch.oci.digest import sha256_digest
from xarch.packages import ensure_lock
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.store import Store
from xarch.summary import platform_name


def rebuilt_digests(
    loaded: LoadedRecipe, platforms: tuple[Platform, ...], reporter: Reporter
) -> dict[str, str]:
    """{"index": digest, "linux/amd64": manifest digest, …} of a fresh local build."""
    epoch, _ = resolve_epoch(loaded)
    store = Store()
    lock = ensure_lock(loaded, locked=True, store=store, reporter=reporter)
    # use_cache=False: the publication is compared with a rebuild, never with a cache entry.
    artifact = build(BuildInputs(loaded, platforms, epoch, lock, None, store, use_cache=False), reporter)
    digests = {"index": sha256_digest(artifact.index_bytes)}
    for image in artifact.images:
        digests[platform_name(image.platform)] = sha256_digest(image.manifest_bytes)
    return digests
