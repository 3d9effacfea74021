"""Put one platform's image into the local Docker engine (`xarch load`, `build --load`).

Docker's image store holds one platform per tag, so a multi-arch layout is loaded one
platform at a time: the host's unless another is asked for. The image goes in as a
docker-archive (what `docker load` reads on every engine, Debian 12's 20.10 included)
through the docker SDK, which negotiates the API version with whatever daemon answers.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from xarch import platforms
from xarch.errors import ExitCode, InputError
from xarch.oci import model
from xarch.oci.digest import Descriptor, platform_name
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.image import Image
from xarch.oci.layer import Layer
from xarch.oci.layout import LayoutError, LayoutReader
from xarch.oci.model import layout_top
from xarch.oci.schema import DocumentError
from xarch.registry.errors import InvalidReference
from xarch.registry.reference import parse_reference
from xarch.summary import summarize_path


class DockerError(InputError):
    """The Docker engine refused what xarch gave it, or the image to load is wrong (exit 2)."""


class DockerUnreachable(DockerError):
    """No Docker engine answers at DOCKER_HOST (or the default socket) (exit 3: the host)."""

    exit_code = ExitCode.HOST


@dataclass(frozen=True)
class LoadedImage:
    """What Docker now holds: the image ID (`sha256:<hex>`), its tag (for a docker-archive loaded
    without --tag, its own tags comma-separated) and platform (`linux/arm64`).
    """

    image_id: str
    tag: str
    platform: str  # "linux/arm64"


def docker_client() -> docker.DockerClient:
    """A client of the daemon DOCKER_HOST (or the default socket) names, checked to answer.

    DockerUnreachable (exit 3) when no engine answers.
    """
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise DockerUnreachable(
            f"cannot reach the Docker engine at {where}: {_first_line(error)} "
            "(is dockerd running? scripts/start-dockerd starts one)"
        ) from None
    return client


def load_archive(archive: Path, client: docker.DockerClient | None = None) -> str:
    """`docker load` a docker-archive tar; returns the id ("sha256:…") of the image it held.

    The engine refusing the archive raises DockerError (exit 2); an engine that is gone,
    DockerUnreachable (exit 3).
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DockerError(f"{archive}: no such docker-archive file")
    client = client or docker_client()
    try:
        with archive.open("rb") as stream:
            images = client.images.load(stream)
    except docker.errors.DockerException as error:
        raise DockerError(f"docker load of {archive} failed: {_first_line(error)}") from None
    if not images:
        raise DockerError(f"docker load of {archive} loaded no image")
    return str(images[0].id)


def load_image(
    source: Path,
    *,
    platform: str | None = None,
    tag: str | None = None,
    client: docker.DockerClient | None = None,
    kind: str | None = None,
) -> LoadedImage:
    """Load SOURCE (an OCI layout folder or oci-archive tar, or a docker-archive tar; KIND is
    what xarch.registry.imageref took it for, None to look at the file).

    From a layout, PLATFORM picks the image (default: the host's, or the only one) and TAG
    names it in Docker (default: derived from the layout's file name). A docker-archive
    keeps its own tags and platform unless TAG is given.

    Raises DockerError (exit 2) for --platform with a docker-archive, a bad TAG or a refused load;
    BlobMismatch/LayoutError (exit 2) for a damaged input; DockerUnreachable (exit 3).
    """
    source = Path(source)
    if kind == "docker-archive" or (kind is None and source.is_file() and _is_docker_archive(source)):
        if platform:
            raise DockerError(f"{source}: a docker-archive holds one platform; --platform picks one "
                              "from an OCI layout")
        full_tag = _docker_tag(tag) if tag else None  # checked before anything is loaded
        summarize_path(source)  # every file checked against its content address before Docker sees it
        client = client or docker_client()
        image_id = load_archive(source, client)
        image = client.images.get(image_id)
        if full_tag:
            name, _, version = full_tag.rpartition(":")
            image.tag(name, version)
        attrs = image.attrs
        arch = "/".join(p for p in (attrs.get("Os"), attrs.get("Architecture"), attrs.get("Variant")) if p)
        return LoadedImage(image_id, full_tag or ",".join(image.tags), arch)

    image = read_layout_image(source, platform)
    return load_built_image(image, tag or _default_tag(source), client)


def load_built_image(image: Image, tag: str, client: docker.DockerClient | None = None) -> LoadedImage:
    """Load one image of a build (`xarch build --load`) into Docker as TAG."""
    full_tag = _docker_tag(tag)
    client = client or docker_client()
    with tempfile.TemporaryDirectory(prefix="xarch-load-") as scratch:
        archive = Path(scratch) / "image.tar"
        # The archive is transient: its tar header times do not matter, the epoch keeps them fixed.
        write_docker_archive(image, [full_tag], archive, epoch=0)
        image_id = load_archive(archive, client)
    return LoadedImage(image_id, full_tag, platform_name(image.platform))


def read_layout_image(layout: Path, platform: str | None) -> Image:
    """The image for PLATFORM in an OCI layout (read through xarch.oci.model), with its blobs checked
    against their descriptors.

    DockerError (exit 2) when no image fits PLATFORM or the layout is damaged; BlobMismatch (exit 2)
    when a blob differs from its descriptor.
    """
    try:
        reader = LayoutReader(layout)
    except LayoutError as error:
        raise DockerError(str(error)) from None
    try:
        top = layout_top(reader)  # the one entry every layout reader takes
        if isinstance(top, model.ImageIndex):
            image = top.image(_choose(layout, top.manifests(), platform))
        else:
            image = top
        config = image.config()
        # The index entry's platform is what --platform chose; docker runs what the config says.
        for field in ("os", "architecture", "variant"):
            said, runs = (image.platform or {}).get(field), config.get(field)
            if said and runs is not None and said != runs:
                raise DockerError(f"{layout}: image {image.digest}: the index says {field} {said!r}, "
                                  f"its config says {runs!r}; docker would run the config's")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(image.layer_descriptors):
            raise DockerError(f"{layout}: image {image.digest}: its manifest's layers and its config's "
                              "rootfs.diff_ids do not pair up")
        # Sizes and entry counts are unknown here and not needed to write the archive.
        layers = tuple(Layer(name=f"layer{layer.position}", diff_id=str(layer.diff_id), blob=layer.read(),
                             uncompressed_size=0, entry_count=0) for layer in image.layers())
        manifest_bytes = image.manifest_bytes or b""
        config_bytes = image.config_bytes()
    except (LayoutError, DocumentError) as error:
        text = str(error)  # names the layout already, as every reader's error does: named once
        named = text if text.startswith(str(layout)) else f"{layout}: not a readable OCI layout ({text})"
        raise DockerError(named) from None
    finally:
        reader.close()
    return Image({"os": "linux", **image.platform}, config_bytes, manifest_bytes, layers)


def _choose(layout: Path, manifests: list[Descriptor], platform: str | None) -> Descriptor:
    if not manifests:
        raise DockerError(f"{layout}: the layout holds no image")
    if platform is None and len(manifests) == 1:
        return manifests[0]
    try:
        wanted = platforms.get(platform) if platform else platforms.host()
    except platforms.UnknownPlatform as error:
        raise DockerError(str(error)) from None
    for desc in manifests:
        if desc.platform and platform_name(desc.platform) == wanted.oci:
            return desc
    have = ", ".join(platform_name(d.platform) if d.platform else "unknown" for d in manifests)
    raise DockerError(f"{layout}: no image for {wanted.oci} (the layout has: {have}); "
                      "choose one with --platform")


def _docker_tag(tag: str) -> str:
    """TAG as docker load wants it ("name:tag"), after checking it is a valid reference."""
    try:
        ref = parse_reference(tag)
    except InvalidReference as error:
        raise DockerError(f"invalid image tag {tag!r}: {error}") from None
    if ref.digest:
        raise DockerError(f"invalid image tag {tag!r}: a loaded image is tagged, not pinned by digest")
    return tag if ref.tag else f"{tag}:latest"


def _default_tag(source: Path) -> str:
    """A repository name from the layout's file name: "out/my_app.oci" → "my_app:latest"."""
    stem = source.resolve().name.split(".")[0].lower()
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("._-") or "xarch-image"
    return f"{stem}:latest"


def _is_docker_archive(path: Path) -> bool:
    """A tar with manifest.json at its top and no OCI index.json: what `docker save` writes."""
    try:
        reader = LayoutReader(path)
    except InputError:  # not a tar (ArchiveError), or index.json without oci-layout (LayoutError)
        return False
    try:
        return reader.has("manifest.json") and not reader.has("index.json")
    finally:
        reader.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
