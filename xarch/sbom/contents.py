"""What one platform's image holds, read back from its layers: the facts an SBOM states.

Read from the image (not from the build's working tree), so the SBOM describes exactly the
bytes that were published, and a cached image gets the same SBOM as a fresh build.
The Debian packages are the lock's entries for the platform, matched with the image's dpkg
database (`/var/lib/dpkg/status` for the source package, `info/NAME[:ARCH].list` for the files)
and the package's `/usr/share/doc/NAME/copyright` for licenses when that file is in the
machine-readable format (DEP-5, parsed with python-debian's `debian.copyright`).
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zlib
from dataclasses import dataclass, field

from xarch.errors import InputError
from xarch.oci.compress import decompressing_reader
from xarch.oci.image import Image
from xarch.oci.tree import path_bytes

DPKG = "var/lib/dpkg"


class SbomError(InputError):
    """An image whose contents cannot be described (a layer that is not a tar); exit 2."""


@dataclass(frozen=True)
class FileFact:
    """One regular file of the image: path (no leading slash), sha256 and sha1 (hex; SPDX 2.3
    requires SHA1 per file) and size in bytes.
    """

    path: str  # in the image, without a leading slash
    sha256: str  # hex
    sha1: str  # hex (SPDX 2.3 requires SHA1 for every file)
    size: int


@dataclass
class PackageFact:
    """One installed Debian package as the lock pins it: name, version, architecture, the .deb's
    sha256 and pool path, suite, source package and version, DEP-5 license short names (empty
    when the copyright file is not machine-readable) and the image paths of the files it owns.
    """

    name: str
    version: str
    architecture: str
    deb_sha256: str  # of the .deb, from the lock
    filename: str  # pool/main/... below the archive root, from the lock
    suite: str
    source: str  # the source package's name
    source_version: str
    licenses: list[str] = field(default_factory=list)  # Debian short names; [] when not machine-readable
    files: list[str] = field(default_factory=list)  # image paths of regular files the package owns


@dataclass
class ImageFacts:
    """What an SBOM says of one platform's image: {path: FileFact} for every regular file, and the
    packages sorted by (name, architecture).
    """

    files: dict[str, FileFact]  # path -> fact, every regular file of the image
    packages: list[PackageFact]  # sorted by (name, architecture)

    def owned(self) -> set[str]:
        """Image paths of the files some package owns (the rest are the recipe's or the steps')."""
        return {path for package in self.packages for path in package.files}


def _wanted(name: str) -> bool:
    """The files whose bytes an SBOM reads (the dpkg database, copyright files); of the others only
    the hashes are kept, so a large image is never held uncompressed in memory."""
    return name == f"{DPKG}/status" or (name.startswith(f"{DPKG}/info/") and name.endswith(".list")) \
        or (name.startswith("usr/share/doc/") and name.endswith("/copyright"))


def _hashed(name: str, data: bytes) -> FileFact:
    return FileFact(_path_text(name), hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                    len(data))


def read_image(image: Image) -> tuple[dict[str, FileFact], dict[str, bytes]]:
    """Every regular file of IMAGE as a FileFact (layers applied in order; a hard link is its
    target's), and the bytes of the files an SBOM reads (_wanted). Layers are streamed.

    SbomError (exit 2) for a layer that is not a readable tar.
    """
    facts: dict[str, FileFact] = {}
    kept: dict[str, bytes] = {}
    for layer in image.layers:
        try:
            stream = decompressing_reader(io.BytesIO(layer.blob), layer.descriptor.media_type)
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # every gzip member or zstd frame
                for info in tar:
                    name = info.name.removeprefix("./").rstrip("/")
                    kept.pop(name, None)
                    if info.isfile():
                        handle = tar.extractfile(info)
                        data = handle.read() if handle else b""
                        facts[name] = _hashed(name, data)
                        if _wanted(name):
                            kept[name] = data
                    elif info.islnk() and info.linkname.removeprefix("./") in facts:
                        target = info.linkname.removeprefix("./")
                        facts[name] = FileFact(_path_text(name), facts[target].sha256, facts[target].sha1,
                                               facts[target].size)
                        if target in kept:
                            kept[name] = kept[target]
                    else:
                        facts.pop(name, None)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            raise SbomError(f"layer {layer.descriptor.digest}: not a readable tar ({error})") from None
    return facts, kept


def _stanzas(status: bytes) -> list[dict[str, str]]:
    from debian.deb822 import Deb822

    return [dict(paragraph) for paragraph in Deb822.iter_paragraphs(status.decode("utf-8", "replace"))]


def licenses_of(copyright_text: bytes) -> list[str]:
    """The Debian license short names of a machine-readable copyright file, sorted, each once;
    [] when the file is not machine-readable (or not valid as such)."""
    from debian.copyright import Copyright, Error, NotMachineReadableError

    try:
        parsed = Copyright(copyright_text.decode("utf-8", "replace").splitlines(keepends=True), strict=False)
    except (NotMachineReadableError, Error, ValueError, KeyError, AttributeError):
        return []
    names = set()
    for paragraph in parsed.all_files_paragraphs():
        try:
            synopsis = getattr(paragraph.license, "synopsis", "") if paragraph.license else ""
        except (ValueError, KeyError, AttributeError):
            continue
        if synopsis and synopsis.strip():
            names.add(" ".join(synopsis.split()))
    return sorted(names)


def _source(stanza: dict[str, str], name: str, version: str) -> tuple[str, str]:
    """(source name, source version): `Source: name (version)`, `Source: name`, or the package itself."""
    match = re.fullmatch(r"\s*(\S+)(?:\s+\((\S+)\))?\s*", stanza.get("Source", ""))
    if not match:
        return name, version
    return match[1], match[2] or version


def _path_text(path: str) -> str:
    return path_bytes(path).decode("utf-8", "backslashreplace")


def image_facts(image: Image, locked: list[tuple[str, str, str, str, str, str]]) -> ImageFacts:
    """The facts of IMAGE; LOCKED: the lock's entries for its platform as (name, version, architecture,
    .deb sha256, filename, suite). Every locked package is listed, whether or not the image's dpkg
    database names it (a package whose files were all excluded is still installed)."""
    files, contents = read_image(image)
    stanzas = {(s.get("Package", ""), s.get("Architecture", "")): s
               for s in _stanzas(contents.get(f"{DPKG}/status", b""))}
    packages = []
    for name, version, architecture, sha256, filename, suite in sorted(locked, key=lambda e: (e[0], e[2])):
        stanza = stanzas.get((name, architecture), {})
        source, source_version = _source(stanza, name, version)
        listing = contents.get(f"{DPKG}/info/{name}:{architecture}.list") \
            or contents.get(f"{DPKG}/info/{name}.list", b"")
        owned = sorted({line.decode("utf-8", "surrogateescape").lstrip("/")
                        for line in listing.splitlines() if line.strip()} & set(files))
        copyright_file = contents.get(f"usr/share/doc/{name}/copyright")
        licenses = licenses_of(copyright_file) if copyright_file is not None else []
        packages.append(PackageFact(name, version, architecture, sha256, filename, suite, source,
                                    source_version, licenses, owned))
    return ImageFacts(files, packages)
