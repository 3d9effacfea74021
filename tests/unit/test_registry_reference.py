"""Image reference parsing: Docker Hub defaults, ports, tags, digests, and clear errors."""

from __future__ import annotations

import pytest

from xarch.registry.errors import InvalidReference
from xarch.registry.reference import parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "host", "repository", "tag", "digest"), [
    ("busybox", "docker.io", "library/busybox", None, None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("user/app", "docker.io", "user/app", None, None),
    ("index.docker.io/user/app:v2", "docker.io", "user/app", "v2", None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", None),
    ("127.0.0.1:5000/app@" + DIGEST, "127.0.0.1:5000", "app", None, DIGEST),
    ("ghcr.io/o/r/deep:tag@" + DIGEST, "ghcr.io", "o/r/deep", "tag", DIGEST),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
])
def test_parses_references(text: str, host: str, repository: str, tag: str | None,
                           digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)


def test_docker_hub_api_host_and_targets() -> None:
    ref = parse_reference("busybox")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.target == "latest"
    assert parse_reference("r.example:443/a:t@" + DIGEST).target == DIGEST
    assert parse_reference("127.0.0.1:5000/a").hostname == "127.0.0.1"
    assert str(parse_reference("127.0.0.1:5000/a:t")) == "127.0.0.1:5000/a:t"


@pytest.mark.parametrize("text", ["", "UPPER/case", "app@sha256:short", "a:b:c/d", "app:bad tag",
                                  "host:x/app"])
def test_rejects_bad_references_naming_them(text: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert "\n" not in str(caught.value)
    if text:
        assert repr(text) in str(caught.value)
