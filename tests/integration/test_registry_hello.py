"""The real pipeline end to end: `xarch build` the example, `xarch push` it, and `xarch assemble`
per-arch builds (as a CI matrix of native runners would) into the very same index bytes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.hello import HELLO, HelloBuild, run_ok
from tests.support.needs import need_tool
from tests.support.registry import Registry, published_digests

pytestmark = pytest.mark.slow


def skopeo_raw(ref: str) -> bytes:
    need_tool("skopeo")
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True).stdout


def layout_index(layout: Path) -> tuple[bytes, dict[str, str]]:
    """The layout's image index bytes and {platform name: manifest digest}."""
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    data = (layout / "blobs/sha256" / top["digest"].split(":")[1]).read_bytes()
    manifests = json.loads(data)["manifests"]
    return data, {"linux/" + m["platform"]["architecture"]: m["digest"] for m in manifests}


def test_push_built_layout_then_assemble_per_arch_builds(registry: Registry, hello_build: HelloBuild,
                                                          tmp_path: Path) -> None:
    index_bytes, digests = layout_index(hello_build.layout)
    pushed = json.loads(run_ok("push", str(hello_build.layout), f"{registry.host}/hello", "--json").stdout)
    assert pushed["reference"].startswith(f"{registry.host}/hello:1.0@")  # the recipe's tag
    assert skopeo_raw(f"{registry.host}/hello:1.0") == index_bytes
    assert published_digests(f"{registry.host}/hello:1.0") == digests
    # The oci-archive output of the same build pushes to the same index.
    from_archive = json.loads(run_ok("push", str(hello_build.oci_archive), f"{registry.host}/hello-tar",
                                     "--json").stdout)
    assert from_archive["digest"] == pushed["digest"]
    assert skopeo_raw(f"{registry.host}/hello-tar:1.0") == index_bytes

    # A CI matrix: each "runner" builds one platform and pushes it to a scratch repository.
    from_args = []
    for arch in ("amd64", "arm64"):
        out = tmp_path / arch
        run_ok("build", "-f", str(HELLO / "xarch.yaml"), "--platform", arch, "-q", "-o", f"oci:{out}")
        target = f"{registry.host}/ci/hello-{arch}:run-1"
        single = json.loads(run_ok("push", str(out), target, "--json").stdout)
        # One platform built alone gives the same manifest as in the multi-platform build.
        assert single["manifests"] == {f"linux/{arch}": digests[f"linux/{arch}"]}
        from_args += ["--from", f"{registry.host}/ci/hello-{arch}@{single['manifests']['linux/' + arch]}"]
    assembled = json.loads(run_ok("assemble", f"{registry.host}/hello:assembled", *from_args, "--json",
                                  "--annotation", "org.opencontainers.image.title=hello").stdout)
    assert assembled["bytes_sent"] == 0
    assert skopeo_raw(f"{registry.host}/hello:assembled") == index_bytes
    assert assembled["digest"] == pushed["digest"]
