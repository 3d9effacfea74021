"""The host's Debian mirror, read from its apt configuration (one-line and deb822 forms)."""

from __future__ import annotations

from pathlib import Path

from debian.deb822 import Deb822

FALLBACK_MIRROR = "http://deb.debian.org/debian"


def host_mirrors(etc_apt: Path = Path("/etc/apt")) -> list[str]:
    """URIs of enabled `deb` entries, in apt's reading order (sources.list, then the
    sources.list.d files sorted by name). Security and third-party archives are skipped:
    they are not full Debian archives."""
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
    return [u.rstrip("/") for u in uris if _is_debian_archive(u)]


def default_mirror() -> str:
    mirrors = host_mirrors()
    return mirrors[0] if mirrors else FALLBACK_MIRROR


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
    for para in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        if "deb" not in para.get("Types", "").split() or para.get("Enabled", "yes").lower() == "no":
            continue
        uris += para.get("URIs", "").split()
    return uris


def _is_debian_archive(uri: str) -> bool:
    path = uri.rstrip("/")
    return path.startswith(("http://", "https://")) and path.endswith("/debian")
