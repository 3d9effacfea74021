"""Packages indexes: fetch per suite/component/architecture, verify against the signed
Release hashes before parsing, parse with python-debian's deb822."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from debian.deb822 import Packages as Deb822Packages

from xarch.oci.store import Store
from xarch.sources.debian import http
from xarch.sources.debian.errors import IndexMismatch
from xarch.sources.debian.release import Release

# Preferred first: the smallest download apt would choose too.
COMPRESSIONS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    (".xz", lzma.decompress),
    (".gz", gzip.decompress),
    (".bz2", bz2.decompress),
    ("", lambda data: data),
)

# What the resolver and the lock need; the rest of the stanza is read from the .deb.
FIELDS = [
    "Package", "Version", "Architecture", "Multi-Arch", "Essential",
    "Depends", "Pre-Depends", "Recommends", "Provides", "Conflicts", "Breaks",
    "Filename", "Size", "SHA256", "Installed-Size",
]

RELATION_FIELDS = ("Multi-Arch", "Essential", "Depends", "Pre-Depends", "Recommends", "Provides", "Conflicts",
                   "Breaks")


@dataclass(frozen=True)
class Candidate:
    """One binary package stanza of an index."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    suite: str
    component: str
    fields: dict[str, str]
    installed_size: int | None = None  # KiB (Installed-Size; an estimate, Debian Policy 5.6.20)

    def get(self, key: str) -> str:
        """The value of field KEY (one of RELATION_FIELDS, e.g. "Depends"); "" when absent."""
        return self.fields.get(key, "")


def fetch_index(release: Release, component: str, arch: str, store: Store | None = None) -> bytes:
    """The uncompressed Packages index of COMPONENT/binary-ARCH, verified against RELEASE's
    SHA256 list (size in bytes and hash; Debian repository format) before it is decompressed;
    STORE caches it by hash. Raises IndexMismatch (exit 4) when Release lists no such index or
    the file differs, DownloadError (exit 4) when it cannot be fetched; a listed file that then
    does not decompress raises the decompressor's error (lzma.LZMAError, OSError)."""
    base = f"{component}/binary-{arch}/Packages"
    for suffix, decompress in COMPRESSIONS:
        listed = release.files.get(base + suffix)
        if listed is None:
            continue
        url = release.url + base + suffix
        cached = store.read(f"sha256:{listed.sha256}") if store is not None else None
        if cached is not None:
            raw = cached
        else:
            raw = http.get_bytes(url)
            actual = hashlib.sha256(raw).hexdigest()
            if len(raw) != listed.size or actual != listed.sha256:
                raise IndexMismatch(
                    f"{url}: sha256 {actual} ({len(raw)} bytes) does not match the signed Release "
                    f"({listed.sha256}, {listed.size} bytes); the mirror is inconsistent or tampered"
                )
            if store is not None:
                store.put_bytes(raw, listed.sha256, url)
        return decompress(raw)
    raise IndexMismatch(f"{release.url}Release lists no {base} index "
                        f"(is {arch} or {component} in this archive?)")


def parse_index(data: bytes, suite: str, component: str) -> Iterable[Candidate]:
    """The stanzas of DATA (an uncompressed Packages index, deb822) as Candidates of
    SUITE/COMPONENT, lazily. Iterating raises IndexMismatch (exit 4) at a stanza without
    Package, Version, Architecture, Filename, SHA256 or a numeric Size."""
    for stanza in Deb822Packages.iter_paragraphs(io.BytesIO(data), fields=FIELDS,
                                                 use_apt_pkg=False, encoding="utf-8"):
        try:
            yield Candidate(
                name=stanza["Package"],
                version=stanza["Version"],
                architecture=stanza["Architecture"],
                filename=stanza["Filename"],
                size=int(stanza["Size"]),
                sha256=stanza["SHA256"],
                suite=suite,
                component=component,
                # Only the relationship fields: the rest are attributes already, and
                # 60,000 stanzas per architecture make every kept string count.
                fields={key: stanza[key] for key in RELATION_FIELDS if key in stanza},
                installed_size=_kib(stanza.get("Installed-Size")),
            )
        except (KeyError, ValueError) as exc:
            raise IndexMismatch(f"{suite}/{component}: stanza of {stanza.get('Package', '?')} "
                                f"lacks a valid {exc}") from None


def _kib(value: str | None) -> int | None:
    """Installed-Size as an int; an absent or malformed one is unknown (it only informs reports)."""
    return int(value) if value is not None and value.strip().isdigit() else None
