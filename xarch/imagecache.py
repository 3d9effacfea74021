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

from xarch.oci.atomic import atomic_file
from xarch.oci.compress import compressor_id
from xarch.oci.digest import canonical_json, hex_of, sha256_digest
from xarch.oci.image import Image
from xarch.oci.layer import Layer
from xarch.platforms import Platform
from xarch.recipe import LoadedRecipe
from xarch.store import Store

if TYPE_CHECKING:
    from xarch.sources.debian.lock import Lock

FORMAT = 1
IGNORED_DIRS = {"dist", ".git", ".tox", "__pycache__", ".venv"}


def cacheable(loaded: LoadedRecipe) -> bool:
    return not any(stage.dockerfile for stage in loaded.recipe.stages.values())


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _source_digest(folder: Path) -> str:
    """Digest of every file below the recipe's folder: path, type, exec bit, content."""
    hasher = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        for name in sorted(files):
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                hasher.update(f"L {relative} {os.readlink(path)}\n".encode())
            elif path.is_file():
                executable = bool(path.stat().st_mode & 0o100)
                hasher.update(f"F {relative} {executable} {_file_sha256(path)}\n".encode())
        for name in dirs:
            path = Path(root) / name
            if path.is_symlink():
                hasher.update(f"L {path.relative_to(folder).as_posix()} {os.readlink(path)}\n".encode())
    return hasher.hexdigest()


def lock_entries(lock: Lock | None, platform: Platform) -> dict[str, list[str]]:
    """The sha256 of every locked package of PLATFORM, per package set."""
    if lock is None:
        return {}
    return {name: sorted(p.sha256 for p in per.get(platform.name, [])) for name, per in lock.packages.items()}


def cache_key(loaded: LoadedRecipe, platform: Platform, epoch: int, lock: Lock | None,
              strategy: str | None) -> str:
    material = {
        "format": FORMAT,
        "compressor": compressor_id(loaded.recipe.compression.level),
        "recipe": loaded.recipe.model_dump(mode="json", by_alias=True),
        "epoch": epoch,
        "platform": platform.name,
        "lock": lock_entries(lock, platform),
        "sources": _source_digest(loaded.folder),
        "strategy": strategy,
    }
    return sha256_digest(canonical_json(material))


class ImageCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.directory = store.root / "images"

    def _entry(self, key: str) -> Path:
        return self.directory / f"{hex_of(key)}.json"

    def get(self, key: str) -> Image | None:
        """The cached image, or None when absent or when any blob is missing or corrupt."""
        try:
            record = json.loads(self._entry(key).read_text())
            layers = []
            for item in record["layers"]:
                blob = self._blob(item["digest"])
                layers.append(Layer(item["name"], item["diff_id"], blob, item["uncompressed_size"],
                                    item["entry_count"]))
            config = self._blob(record["config"])
            manifest = self._blob(record["manifest"])
        except (OSError, ValueError, KeyError):
            return None
        return Image(dict(record["platform"]), config, manifest, tuple(layers))

    def _blob(self, digest: str) -> bytes:
        data = self.store.path(hex_of(digest)).read_bytes()
        if sha256_digest(data) != digest:
            raise ValueError(f"cached blob {digest} is corrupt")
        return data

    def put(self, key: str, image: Image) -> None:
        for data in (image.config_bytes, image.manifest_bytes, *(layer.blob for layer in image.layers)):
            if not self.store.has(hashlib.sha256(data).hexdigest()):
                self.store.put_bytes(data)
        record = {
            "platform": image.platform,
            "config": image.config_descriptor.digest,
            "manifest": sha256_digest(image.manifest_bytes),
            "layers": [
                {"name": layer.name, "digest": layer.descriptor.digest, "diff_id": layer.diff_id,
                 "uncompressed_size": layer.uncompressed_size, "entry_count": layer.entry_count}
                for layer in image.layers
            ],
        }
        with atomic_file(self._entry(key)) as handle:
            handle.write(canonical_json(record))
