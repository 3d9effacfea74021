"""The host's Debian mirror, read from its apt configuration (one-line and deb822 forms)."""

from __future__ import annotations

import re
from pathlib import Path

FALLBACK_MIRROR = "http://deb.debian.org/debian"
FALLBACK_SECURITY_MIRROR = "http://deb.debian.org/debian-security"


def host_mirrors(etc_apt: Path = Path("/etc/apt"), security: bool = False) -> list[str]:
    """URIs of enabled `deb` entries, in apt's reading order (sources.list, then the
    sources.list.d files sorted by name): Debian archives (…/debian), or with SECURITY
    the security archives (…/debian-security). Third-party archives and unreadable files
    are skipped. Formats: sources.list(5), one-line and deb822-style."""
    uris: list[str] = []
    main_list = etc_apt / "sources.list"
    files = [main_list] if main_list.is_file() else []
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        uris += _deb822_uris(text) if path.suffix == ".sources" else _one_line_uris(text)
    tail = "/debian-security" if security else "/debian"
    return [u.rstrip("/") for u in uris if _is_archive(u, tail)]


def default_mirror(security: bool = False) -> str:
    """The first archive URI of host_mirrors (with SECURITY: the first security archive), else
    deb.debian.org's (FALLBACK_MIRROR, FALLBACK_SECURITY_MIRROR): a URL without trailing slash."""
    mirrors = host_mirrors(security=security)
    if mirrors:
        return mirrors[0]
    return FALLBACK_SECURITY_MIRROR if security else FALLBACK_MIRROR


def _one_line_uris(text: str) -> list[str]:
    uris = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if words:
            uris.append(words[0])
    return uris


def _deb822_uris(text: str) -> list[str]:
    uris = []
    paragraphs = _plain_paragraphs(text)
    if paragraphs is None:  # an OpenPGP armor line: python-debian's parser, which strips it
        from debian.deb822 import Deb822

        paragraphs = [
            {key.lower(): value for key, value in para.items()}
            for para in Deb822.iter_paragraphs(text.splitlines(keepends=True))
        ]
    for para in paragraphs:
        if "deb" not in para.get("types", "").split() or para.get("enabled", "yes").lower() == "no":
            continue
        uris += para.get("uris", "").split()
    return uris


# python-debian's Deb822._new_field_re: `Key: value`, the value without surrounding white space.
_FIELD = re.compile(r"^(?P<key>[^: \t\n\r\f\v]+)\s*:\s*(?P<data>(?:\S+(\s+\S+)*)?)\s*$")


def _plain_paragraphs(text: str) -> list[dict[str, str]] | None:
    """TEXT's paragraphs as {lower-case field: value}, exactly as python-debian's
    `Deb822.iter_paragraphs(text.splitlines(keepends=True))` reads them (its internal parser, step
    by step: `#` lines dropped, blank or white-space lines end a paragraph, a line starting with
    white space continues the field before it, other lines ignored, an empty paragraph ends the
    file); None when a line starts with `-` (OpenPGP armor, which only python-debian strips).

    Here, not python-debian itself: importing debian.deb822 cost every `xarch build` ~20 ms for
    the few lines of /etc/apt/sources.list.d (tests/unit/test_debian_config.py compares the two).
    """
    lines = [
        raw.strip(b"\r\n")
        for raw in (line.encode() for line in text.splitlines(keepends=True))
        if not raw.startswith(b"#")
    ]
    if any(line.startswith(b"-") for line in lines):
        return None
    paragraphs: list[dict[str, str]] = []
    index = 0
    while True:
        while index < len(lines) and (not lines[index] or lines[index].isspace()):
            index += 1
        if index == len(lines):
            return paragraphs
        para: dict[str, str] = {}
        key, content = None, ""
        while index < len(lines) and lines[index] and not lines[index].isspace():
            line = lines[index].decode()
            index += 1
            match = _FIELD.match(line)
            if match:
                if key:
                    para[key.lower()] = content
                key, content = match.group("key"), match.group("data")
            elif line[0].isspace() and not line.isspace():
                content += "\n" + line
        if key:
            para[key.lower()] = content
        if not para:
            return paragraphs  # python-debian stops at the first paragraph without a field
        paragraphs.append(para)


def _is_archive(uri: str, tail: str) -> bool:
    path = uri.rstrip("/")
    return path.startswith(("http://", "https://")) and path.endswith(tail)
