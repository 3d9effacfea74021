"""Image references: `[host[:port]/]repo[:tag][@sha256:hex]`, with Docker Hub's defaults.

Parsed by hand: the grammar is ten lines of the distribution spec, and the docker SDK's
`parse_repository_tag` neither validates nor applies the `library/` and registry-host defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xarch.registry.errors import InvalidReference

DOCKER_HUB = "docker.io"
# docker.io is a name, not a server: the API answers at registry-1.docker.io.
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. `tag` and `digest` may both be set (the digest wins on pull)."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host:port that serves the HTTP API for this reference."""
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def hostname(self) -> str:
        """The host without its port (what the plain-HTTP rule looks at)."""
        if self.host.startswith("["):
            return self.host[1 : self.host.index("]")]
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host

    @property
    def target(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag (default latest)."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str | None) -> Reference:
        """The same host and repository with TAG (None: the default `latest`) and no digest."""
        return Reference(self.host, self.repository, tag, None)

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _redacted(text: str) -> str:
    """TEXT with the user-information part of a URL-like `[scheme://]user:password@host/…` hidden."""
    return re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@]*@", r"\1***@", text)


def check_repository(name: str, what: str) -> str:
    """NAME when it is a repository name (`team/app`: lowercase components joined by `/`, as in the
    distribution spec); else InvalidReference (exit 2) naming WHAT (e.g. `--mount-from`) and NAME."""
    if not _REPO_RE.match(name):
        raise InvalidReference(f"{what} {name!r}: not a repository name (lowercase letters, digits, . _ -, "
                               "components joined by /)")
    return name


def _check_host(text: str, host: str) -> None:
    """InvalidReference naming TEXT when HOST's port is outside 1..65535 or its name breaks DNS's
    limits (labels of at most 63 bytes, 253 in all; RFC 1035), which the HTTP client would only
    refuse later, with a message that names neither."""
    name, _, port = host.rpartition(":") if not host.endswith("]") and ":" in host else (host, "", "")
    if port and not 1 <= int(port) <= 65535:
        raise InvalidReference(f"image reference {text!r}: registry port {port} is not in 1..65535")
    if not name.startswith("[") and (len(name) > 253 or any(len(label) > 63 for label in name.split("."))):
        raise InvalidReference(f"image reference {text[:100]!r}...: registry host is longer than DNS "
                               "allows (63 characters a label, 253 in all)")


def parse_reference(text: str) -> Reference:
    """Parse TEXT; raise InvalidReference naming it when it is not a valid reference."""
    rest = text.strip()
    if not rest:
        raise InvalidReference("empty image reference")
    scheme, sep, after = rest.partition("://")
    if scheme == "docker":  # skopeo's transport prefix, which diff and inspect take too
        scheme, sep, rest = "", "", after
    if sep and "/" not in scheme:
        raise InvalidReference(f"image reference {_redacted(text)!r}: no {scheme}:// (write host/name:tag; "
                               "plain HTTP is chosen by --insecure or for localhost)")
    if "/" in rest and "@" in rest.split("/", 1)[0]:  # a digest never holds a `/`
        # user:password@host as in a URL: never echo it, never send it.
        raise InvalidReference(f"image reference {_redacted(text)!r}: credentials do not go in a reference "
                               "(use -u with --password-stdin, or docker login)")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidReference(f"image reference {text!r}: digest must be sha256:<64 hex digits>")
    host = DOCKER_HUB
    first, sep, remainder = rest.partition("/")
    # Docker's rule: the first component is a host when it has a dot, a port, or is localhost.
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _HOST_RE.match(first):
            raise InvalidReference(f"image reference {text!r}: bad registry host {first!r}")
        _check_host(text, first)
        host, rest = first, remainder
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"image reference {text!r}: bad tag {tag!r}")
    if not _REPO_RE.match(rest):
        raise InvalidReference(
            f"image reference {text!r}: bad repository name {rest!r} (lowercase letters, digits, . _ -)"
        )
    named = rest if host == DOCKER_HUB else f"{host}/{rest}"
    if len(named) > 255:  # distribution/reference's NameTotalLengthMax: docker and registries refuse more
        raise InvalidReference(f"image reference {text[:60]!r}...: the name is {len(named)} characters, "
                               "more than the 255 a registry or docker takes")
    if host in (DOCKER_HUB, "index.docker.io"):
        host = DOCKER_HUB
        if "/" not in rest:
            rest = f"library/{rest}"
    return Reference(host=host, repository=rest, tag=tag, digest=digest)
