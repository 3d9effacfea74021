"""One parser for every image argument: inspect, diff, load, push (its source), verify --against.

An argument is, in this order:

1. `docker://REF` or `registry:REF`: a registry reference, always.
2. `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`: that kind, at that path (skopeo's
   transport names); the path must exist and be a folder (oci) or a file (the archives).
3. An existing file or folder: a folder is an OCI layout; a file is read as a tar and is an
   oci-archive when it holds `index.json` (Docker 25+ `docker save` writes both), else a
   docker-archive when it holds `manifest.json`.
4. Otherwise a registry reference `host[:port]/repo[:tag][@digest]` or `user/repo[:tag]` (Docker
   Hub). A name without a `/` (`out.tar`, `alpine`) is never sent to a registry unprefixed: it
   is far more likely a missing file than Docker Hub's library/ namespace.

So an existing local file or folder is never taken for a registry name. Every command says
which kind it took (ImageRef.label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xarch.errors import InputError

OCI, OCI_ARCHIVE, DOCKER_ARCHIVE, REGISTRY = "oci", "oci-archive", "docker-archive", "registry"
KINDS = (OCI, OCI_ARCHIVE, DOCKER_ARCHIVE, REGISTRY)
LOCAL_KINDS = (OCI, OCI_ARCHIVE, DOCKER_ARCHIVE)
_NAMES = {OCI: "OCI layout folder", OCI_ARCHIVE: "oci-archive", DOCKER_ARCHIVE: "docker-archive",
          REGISTRY: "registry image"}
_ARTICLE = {OCI: "an", OCI_ARCHIVE: "an", DOCKER_ARCHIVE: "a", REGISTRY: "a"}


class ImageRefError(InputError):
    """An image argument that names nothing readable, or a kind the command cannot take (exit 2)."""


@dataclass(frozen=True)
class ImageRef:
    """What an image argument names: KIND, and PATH (local kinds) or REFERENCE (registry)."""

    kind: str
    text: str  # as the user typed it
    path: Path | None = None
    reference: str | None = None  # host/repo[:tag][@digest], without docker:// or registry:

    @property
    def label(self) -> str:
        """`oci-archive out.tar`, `registry image 127.0.0.1:5000/app:v1`: what commands print."""
        return f"{_NAMES[self.kind]} {self.reference if self.kind == REGISTRY else self.path}"

    def __str__(self) -> str:
        return self.text


def parse_image_ref(text: str, accept: tuple[str, ...] = KINDS, role: str = "image") -> ImageRef:
    """Parse TEXT (see the module text) into an ImageRef of one of the ACCEPT kinds.

    ROLE names the argument in messages ("--against", "LAYOUT"). Raises ImageRefError (one
    line naming TEXT) when it names nothing, is not an image, or is a kind not in ACCEPT.
    Registry references are checked against the reference grammar (InvalidReference).
    """
    ref = _parse(text, role, REGISTRY in accept)
    if ref.kind not in accept:
        names = [f"{_ARTICLE[kind]} {_NAMES[kind]}" for kind in accept]
        takes = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise ImageRefError(f"{role} {text}: is {_ARTICLE[ref.kind]} {_NAMES[ref.kind]}; "
                            f"this command takes {takes}")
    return ref


def _parse(text: str, role: str, registry_ok: bool) -> ImageRef:
    for prefix in ("docker://", "registry:"):
        if text.startswith(prefix):
            return _registry(text, text[len(prefix):])
    kind, sep, rest = text.partition(":")
    if sep and kind in LOCAL_KINDS and rest:
        path = Path(rest)
        if not path.exists():
            raise ImageRefError(f"{role} {text}: no such file or folder")
        if kind == OCI and not path.is_dir():
            raise ImageRefError(f"{role} {text}: not a folder (oci: names an OCI layout folder)")
        if kind != OCI and not path.is_file():
            raise ImageRefError(f"{role} {text}: not a file ({kind}: names a tar file)")
        return ImageRef(kind, text, path)
    path = Path(text)
    if path.is_dir():
        return ImageRef(OCI, text, path)
    if path.exists():
        if not path.is_file():
            raise ImageRefError(f"{role} {text}: neither a folder nor a file")
        return ImageRef(_archive_kind(path, role, text), text, path)
    if not registry_ok:  # a command that reads only local images: a missing name is a missing path
        raise ImageRefError(f"{role} {text}: no such file or folder")
    if "/" in text and not text.startswith((".", "/", "~")) and not text.endswith("/"):
        return _registry(text, text)
    raise ImageRefError(f"{role} {text}: no such file or folder (a registry image is written "
                        "host/name:tag, user/name:tag or docker://name:tag)")


def _registry(text: str, reference: str) -> ImageRef:
    # Imported here: local images need not load the registry package.
    from xarch.registry.reference import parse_reference

    parse_reference(reference)  # raises InvalidReference naming it
    return ImageRef(REGISTRY, text, reference=reference)


def _archive_kind(path: Path, role: str, text: str) -> str:
    """oci-archive or docker-archive, from the names in the tar at PATH.

    Read through the one archive opener (xarch/oci/archive.py), so a cut or foreign file
    is worded the same whichever command meets it (loaded here: a folder needs no tar reader).
    """
    from xarch.oci.archive import ArchiveError, open_archive

    try:
        archive, members = open_archive(path)
    except ArchiveError as error:
        raise ImageRefError(f"{role} {error}") from None
    archive.close()
    names = set(members)
    if "index.json" in names:
        return OCI_ARCHIVE
    if "manifest.json" in names:
        return DOCKER_ARCHIVE
    raise ImageRefError(f"{role} {text}: a tar holding neither index.json (oci-archive) nor "
                        "manifest.json (docker-archive)")
