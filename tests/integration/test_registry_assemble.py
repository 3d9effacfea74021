"""`xarch assemble`: per-arch images pushed by digest (a CI matrix) stitched into one index.

The assembled index must be byte-identical to the index of a local multi-arch build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.needs import need_tool
from tests.support.registry import FlakyProxy, HandLayout, Registry, make_layout
from xarch.cli.assemble import assemble_command
from xarch.oci.digest import OCI_MANIFEST, canonical_json
from xarch.oci.index import build_index
from xarch.registry.assemble import assemble
from xarch.registry.errors import RegistryError
from xarch.registry.push import push_layout


def skopeo_raw(ref: str) -> bytes:
    need_tool("skopeo")
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True).stdout


def single_platform_layout(layout: HandLayout, name: str, destination: Path) -> Path:
    """What one native CI runner would have: a layout whose index.json names just its manifest."""
    shutil.copytree(layout.path, destination)
    descriptor = next(d for d in layout.descriptors if d.to_json()["platform"] == _platform(layout, name))
    top = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [{"mediaType": OCI_MANIFEST, "digest": descriptor.digest, "size": descriptor.size}]}
    (destination / "index.json").write_bytes(canonical_json(top))
    return destination


def _platform(layout: HandLayout, name: str) -> dict[str, str]:
    manifest = json.loads(layout.manifests[name])
    config_path = layout.path / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(config_path.read_bytes())
    return {k: config[k] for k in ("architecture", "os", "variant") if k in config}


@pytest.fixture
def per_arch_pushes(registry: Registry, tmp_path: Path) -> tuple[HandLayout, dict[str, str]]:
    """A 3-platform build, each platform pushed by a separate "runner" to its own repository."""
    layout = make_layout(tmp_path / "full", ["amd64", "arm64", "arm/v7"])
    refs = {}
    for name in ("amd64", "arm64", "arm/v7"):
        single = single_platform_layout(layout, name, tmp_path / name.replace("/", "-"))
        result = push_layout(single, f"{registry.host}/ci/{name.replace('/', '-')}:run-42")
        refs[name] = f"{registry.host}/ci/{name.replace('/', '-')}@{result.manifests['linux/' + name]}"
    return layout, refs


def test_assembled_index_equals_the_local_index(registry: Registry,
                                                per_arch_pushes: tuple[HandLayout, dict[str, str]]) -> None:
    layout, refs = per_arch_pushes
    result = assemble(f"{registry.host}/app:v1", [refs["amd64"], refs["arm64"], refs["arm/v7"]])
    assert skopeo_raw(f"{registry.host}/app:v1") == layout.index_bytes
    assert result.stats.bytes_sent == 0  # every blob came by mount
    assert result.stats.blobs_mounted == 7  # 3 configs, 3 platform layers, the shared base once
    assert result.stats.blobs_skipped == 2  # the shared base, already mounted for amd64
    assert set(result.manifests) == {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    # The target repository really holds every manifest by digest.
    for name, manifest in layout.manifests.items():
        assert skopeo_raw(f"{registry.host}/app@{result.manifests['linux/' + name]}") == manifest


def test_order_of_from_is_the_index_order(registry: Registry,
                                          per_arch_pushes: tuple[HandLayout, dict[str, str]]) -> None:
    layout, refs = per_arch_pushes
    assemble(f"{registry.host}/app:reversed", [refs["arm/v7"], refs["arm64"], refs["amd64"]])
    assert skopeo_raw(f"{registry.host}/app:reversed") == build_index(list(reversed(layout.descriptors)))


def test_assemble_command_json(registry: Registry,
                               per_arch_pushes: tuple[HandLayout, dict[str, str]]) -> None:
    layout, refs = per_arch_pushes
    args = [f"{registry.host}/app:cli", "--json"] + [arg for name in ("amd64", "arm64", "arm/v7")
                                                     for arg in ("--from", refs[name])]
    outcome = CliRunner().invoke(assemble_command, args)
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    assert summary["reference"].endswith("/app:cli@" + summary["digest"])
    assert skopeo_raw(f"{registry.host}/app:cli") == layout.index_bytes


def test_assemble_refuses_bad_sources(registry: Registry, per_arch_pushes: tuple[HandLayout, dict[str, str]],
                                      tmp_path: Path) -> None:
    layout, refs = per_arch_pushes
    with pytest.raises(RegistryError, match="give a digest"):
        assemble(f"{registry.host}/app:v1", [f"{registry.host}/ci/amd64:run-42"])
    with pytest.raises(RegistryError, match="are both linux/arm64"):
        assemble(f"{registry.host}/app:v1", [refs["arm64"], refs["arm64"]])
    index = push_layout(layout.path, f"{registry.host}/full:v1")
    with pytest.raises(RegistryError, match="not an image manifest"):
        assemble(f"{registry.host}/app:v1", [f"{registry.host}/full@{index.digest}"])
    with pytest.raises(RegistryError, match="not found"):
        assemble(f"{registry.host}/app:v1", [f"{registry.host}/ci/amd64@sha256:{'0' * 64}"])
    with pytest.raises(subprocess.CalledProcessError):
        skopeo_raw(f"{registry.host}/app:v1")  # no failed attempt wrote the tag


def test_registry_without_mount_gets_blobs_copied(
        registry: Registry, per_arch_pushes: tuple[HandLayout, dict[str, str]]) -> None:
    layout, refs = per_arch_pushes
    with FlakyProxy(registry.host, no_mount=True) as proxy:
        sources = [refs[name].replace(registry.host, proxy.host) for name in ("amd64", "arm64", "arm/v7")]
        result = assemble(f"{proxy.host}/app:copied", sources)
    # Every blob went down from the source repository and up into the target, verified on the way.
    assert (result.stats.blobs_mounted, result.stats.blobs_sent) == (0, 7)
    assert result.stats.bytes_sent == layout.blob_bytes
    assert skopeo_raw(f"{registry.host}/app:copied") == layout.index_bytes
