"""docker-archive: one platform's image as a tar that `docker load` accepts.

The format `docker save` wrote before Docker 25: manifest.json names the config, the
repo tags and the layers. Layers stay gzip-compressed (docker load decompresses them),
so the blobs are the very bytes of the OCI layout and the digests carry over.
"""

from __future__ import annotations

from pathlib import Path

from xarch.oci.atomic import atomic_file
from xarch.oci.digest import canonical_json, hex_of
from xarch.oci.image import Image
from xarch.oci.layout import layout_entries
from xarch.oci.tar import write_tar


def docker_archive_files(image: Image, repo_tags: list[str]) -> list[tuple[str, bytes | Path]]:
    """[(path in the archive, bytes or the file holding them)] of IMAGE as a docker-archive tagged
    REPO_TAGS (["name:tag"]): blobs/sha256/<hex> for the config and the layers, and manifest.json;
    sorted by path.
    """
    config_path = f"blobs/sha256/{hex_of(image.config_descriptor.digest)}"
    layer_paths = [f"blobs/sha256/{hex_of(layer.descriptor.digest)}" for layer in image.layers]
    manifest = [{"Config": config_path, "Layers": layer_paths, "RepoTags": list(repo_tags)}]
    files: dict[str, bytes | Path] = {config_path: image.config_bytes,
                                      "manifest.json": canonical_json(manifest)}
    for path, layer in zip(layer_paths, image.layers, strict=True):
        files[path] = layer.source  # a store file is streamed into the archive
    return sorted(files.items())


def write_docker_archive(image: Image, repo_tags: list[str], target: Path, epoch: int) -> None:
    """Write IMAGE as a docker-archive tar at TARGET (replaced atomically), tar entry times clamped
    to EPOCH (seconds); `docker load` accepts it. TarError (exit 2) if a layer file changes.
    """
    with atomic_file(target) as handle:
        write_tar(layout_entries(iter(docker_archive_files(image, repo_tags))), epoch, handle)
