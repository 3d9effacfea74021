"""Cache of finished per-platform images, so an unchanged rebuild costs almost nothing.

The key is a digest of everything a platform's image is a function of: the validated
recipe, the epoch, the platform, the locked packages of every set, the bytes (and
executable bits) of every source file the recipe can read, the strategy override, the
compressor and this cache's format. The value names the blobs, which live in the
content-addressed store and are checked against their digests when read back.

Recipes with a Dockerfile stage are never cached: what buildx produces is not a
function of inputs xarch can see (a RUN step may fetch anything).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from xarch.build.contents import all_file_specs, expand_source
from xarch.build.ignorefile import ignore_matcher, select, stage_inputs
from xarch.build.imagerecord import image_from_record, image_record, store_image
from xarch.oci.atomic import atomic_file
from xarch.oci.compress import compressor_id
from xarch.oci.digest import canonical_json, file_sha256, hex_of, sha256_digest
from xarch.oci.image import Image
from xarch.oci.store import Store
from xarch.oci.tree import path_bytes
from xarch.platforms import Platform
from xarch.recipe import LoadedRecipe
from xarch.run.fsmeta import HardLinks, kept_xattrs

if TYPE_CHECKING:
    from xarch.sources.debian.lock import Lock
    from xarch.sources.python.lock import PythonLock

# 2: images passed the ELF check (xarch/build/elfcheck.py); 3: .xarchignore, stage inputs;
# 4: sources' hard links and kept extended attributes (they change the image, not a file's bytes)
FORMAT = 4


def cacheable(loaded: LoadedRecipe) -> bool:
    """Whether a finished image of LOADED may come from the image cache: not when a stage is a
    Dockerfile (buildx's own inputs are not all known to xarch)."""
    return not any(stage.dockerfile for stage in loaded.recipe.stages.values())


def _hash_path(hasher: hashlib._Hash, label: str, root: Path, paths: list[str] | None = None) -> None:
    """Feed ROOT (a file, or PATHS below the folder ROOT) into HASHER: names, types, link
    targets, owner-executable bits, contents, the extended attributes an image keeps (file
    capabilities) and which files are hard links of one another: all that a build reads of it
    (xarch.build.contents)."""
    hasher.update(f"{label}\n".encode())
    links = HardLinks()
    for relative in [".", *(paths or [])]:
        path = root / relative if relative != "." else root
        if path.is_symlink():
            hasher.update(path_bytes(f"L {relative} {os.readlink(path)}\n"))
        elif path.is_dir():
            hasher.update(path_bytes(f"D {relative}\n"))
        elif path.is_file():
            info = path.stat()
            executable = bool(info.st_mode & 0o100)
            first = links.seen(info, relative)
            hasher.update(path_bytes(f"F {relative} {executable} {file_sha256(path)} {first!r} "
                                     f"{[(name, value.hex()) for name, value in kept_xattrs(path)]!r}\n"))


def sources_digest(loaded: LoadedRecipe, platform: Platform) -> str:
    """Digest of exactly what the build of PLATFORM reads from the recipe's folder: every
    `files:` source (image and stages) minus what .xarchignore leaves out, and each stage's
    inputs (xarch.build.ignorefile.stage_inputs)."""
    hasher = hashlib.sha256()
    folder = loaded.folder.resolve()
    for loc, spec in all_file_specs(loaded):
        if spec.platforms is None or platform.name in spec.platforms:
            source = expand_source(loaded, loc, spec, platform)
            paths = select(folder, source, ignore_matcher(folder)) if source.is_dir() else None
            _hash_path(hasher, repr(loc), source, paths)
    for name, stage in sorted(loaded.recipe.stages.items()):
        if stage.steps:
            start, paths = stage_inputs(loaded, name, stage)
            _hash_path(hasher, f"stage {name} /src", start, paths)
    return hasher.hexdigest()


def lock_entries(lock: Lock | None, platform: Platform) -> dict[str, list[str]]:
    """The sha256 of every locked package of PLATFORM, per package set and cross root
    (`BUILD->PLATFORM`, see xarch.sources.debian.lock.cross_key)."""
    if lock is None:
        return {}
    return {f"{name} {key}": sorted(p.sha256 for p in entries) for name, per in lock.packages.items()
            for key, entries in per.items() if key == platform.name or key.endswith(f"->{platform.name}")}


def cache_key(loaded: LoadedRecipe, platform: Platform, epoch: int, lock: Lock | None,
              strategy: str | None, python: PythonLock | None = None,
              stage_python: dict[str, PythonLock] | None = None) -> str:
    """The image cache key (`sha256:<hex>`) of PLATFORM's image: the recipe, the compressor, the
    locked packages and wheels, the strategy, EPOCH (seconds) and every file the build reads
    (sources_digest); any change gives another key."""
    material = {
        "format": FORMAT,
        "compressor": compressor_id(loaded.recipe.compression.level, loaded.recipe.compression.algorithm),
        "recipe": loaded.as_json(),
        "epoch": epoch,
        "platform": platform.name,
        "lock": lock_entries(lock, platform),
        "sources": sources_digest(loaded, platform),
        "strategy": strategy,
    }
    if loaded.recipe.trace is not None:
        from xarch.trace.apply import record_digest

        material["trace"] = record_digest(loaded)  # xarch.trace decides what the image keeps
    if python is not None:  # only then: the keys of recipes without python: stay as they were
        from xarch.build.python import cache_material

        material["python"] = cache_material(python, platform)
    if stage_python:  # likewise: only recipes with a stage's python: get this part
        from xarch.build.python_stages import stage_cache_material

        material["stage_python"] = stage_cache_material(stage_python, platform)
    return sha256_digest(canonical_json(material))


class ImageCache:
    """Finished images by cache key: `<store>/images/<hex>.json` names the blobs (in the store) of
    one platform's image. An entry whose blobs are missing or corrupt is rebuilt, never served."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.directory = store.root / "images"

    def _entry(self, key: str) -> Path:
        return self.directory / f"{hex_of(key)}.json"

    def get(self, key: str) -> Image | None:
        """The cached image, or None when absent or when any blob is missing or corrupt."""
        from xarch.smallfile import SmallFileError, read_small

        try:
            # read_small: a FIFO or device in its place is refused, never waited on
            return image_from_record(self.store, json.loads(read_small(self._entry(key), 16 << 20)))
        except (OSError, ValueError, SmallFileError):
            return None  # a damaged entry is rebuilt (and rewritten), never served

    def put(self, key: str, image: Image) -> None:
        """Remember IMAGE under KEY (its blobs put into the store); written atomically."""
        store_image(self.store, image)
        record = image_record(image)
        with atomic_file(self._entry(key)) as handle:
            handle.write(canonical_json(record))
