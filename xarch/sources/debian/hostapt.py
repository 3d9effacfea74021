"""The host's Debian mirror, read from its apt configuration (one-line and deb822 forms)."""

from __future__ import annotations

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
    from debian.deb822 import Deb822  # here, not at the top: `xarch build` should start fast

    uris = []
    for para in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        if "deb" not in para.get("Types", "").split() or para.get("Enabled", "yes").lower() == "no":
            continue
        uris += para.get("URIs", "").split()
    return uris


def _is_archive(uri: str, tail: str) -> bool:
    path = uri.rstrip("/")
    return path.startswith(("http://", "https://")) and path.endswith(tail)
