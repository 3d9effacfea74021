"""Every reader verifies what it reads: a blob whose bytes differ from its descriptor's digest or
size is one error line wherever it is read — inspect, diff, push, load, verify --against; OCI
layouts, oci-archives, docker-archives, the content-addressed store, and a registry's answers.

Local files: exit 2 (bad input), the line names the file and the descriptor's digest.
A registry answering other bytes than it was asked for: exit 4 (network or registry).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hello import SESSION_CACHE, HelloBuild, copy_hello
from tests.support.inprocess import xarch_in_process
from tests.support.registry import FlakyProxy, Registry, make_layout
from xarch.oci.digest import canonical_json, sha256_digest
from xarch.oci.store import Store
from xarch.registry.client import Settings
from xarch.registry.errors import CorruptAnswer
from xarch.registry.pull import fetch_image, pull_layout
from xarch.registry.push import push_layout

INPUT, NETWORK = 2, 4


@pytest.fixture(autouse=True)
def session_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process builds share the session's test cache (never ~/.cache/xarch).
    monkeypatch.setenv("XARCH_CACHE", str(SESSION_CACHE))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


# ---- helpers that damage a copy of a good image ------------------------------------------------

def blob_file(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def read_json(layout: Path, digest: str) -> Any:
    return json.loads(blob_file(layout, digest).read_bytes())


def first_manifest(layout: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(index descriptor of the first image, its manifest) of a layout whose index.json names an index."""
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    descriptor = read_json(layout, top["digest"])["manifests"][0]
    return descriptor, read_json(layout, descriptor["digest"])


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def rechain(layout: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply EDIT to the first image's manifest and rewrite the manifest, the index and index.json
    so every digest above it matches again: only what EDIT changed is wrong."""
    index_json = json.loads((layout / "index.json").read_bytes())
    top = index_json["manifests"][0]
    index = read_json(layout, top["digest"])
    manifest = read_json(layout, index["manifests"][0]["digest"])
    edit(manifest)
    manifest_bytes = canonical_json(manifest)
    blob_file(layout, sha256_digest(manifest_bytes)).write_bytes(manifest_bytes)
    index["manifests"][0].update(digest=sha256_digest(manifest_bytes), size=len(manifest_bytes))
    index_bytes = canonical_json(index)
    blob_file(layout, sha256_digest(index_bytes)).write_bytes(index_bytes)
    top.update(digest=sha256_digest(index_bytes), size=len(index_bytes))
    (layout / "index.json").write_bytes(canonical_json(index_json))


def tar_member_offset(archive: Path, name: str) -> int:
    with tarfile.open(archive) as tar:
        return tar.getmember(name).offset_data


# ---- a flipped byte in a layer, an oci-archive member, a docker-archive layer -----------------

@pytest.fixture
def flipped_layout(hello_build: HelloBuild, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the hello layout with one byte of its first image's last layer flipped."""
    layout = tmp_path / "bad"
    shutil.copytree(hello_build.layout, layout)
    _, manifest = first_manifest(layout)
    layer = manifest["layers"][-1]["digest"]
    flip_byte(blob_file(layout, layer), 100)
    return layout, layer


def test_inspect_refuses_a_flipped_layer_byte(flipped_layout: tuple[Path, str]) -> None:
    layout, layer = flipped_layout
    outcome = xarch_in_process("inspect", str(layout))
    assert outcome.code == INPUT
    outcome.one_error_line(str(layout), f"blob {layer} does not match its digest")


def test_diff_against_the_good_image_refuses_it(hello_build: HelloBuild,
                                                flipped_layout: tuple[Path, str]) -> None:
    # Same manifests on both sides: without reading the layer, diff would call them identical.
    layout, layer = flipped_layout
    outcome = xarch_in_process("diff", str(hello_build.layout), str(layout))
    assert outcome.code == INPUT
    outcome.one_error_line(str(layout), layer)


def test_load_refuses_it_before_docker_is_asked(flipped_layout: tuple[Path, str]) -> None:
    layout, layer = flipped_layout
    outcome = xarch_in_process("load", str(layout), "--platform", "amd64", "-t", "xarch-never-loaded:1")
    assert outcome.code == INPUT
    outcome.one_error_line(str(layout), layer)


def test_push_refuses_it_before_sending_anything(registry: Registry,
                                                 flipped_layout: tuple[Path, str]) -> None:
    layout, layer = flipped_layout
    outcome = xarch_in_process("push", str(layout), f"{registry.host}/verify/bad:1", "-q")
    assert outcome.code == INPUT
    outcome.one_error_line(str(layout), layer)
    # The registry was only asked which blobs it lacks (HEAD; a blob it has is never read, see
    # xarch/registry/push_source.py); the flipped one it lacks was hashed before anything was written.
    assert not re.search(r'"(POST|PUT|PATCH|DELETE) /v2/verify/bad', registry.log.read_text())


def test_verify_against_refuses_it(hello_build: HelloBuild, flipped_layout: tuple[Path, str],
                                   tmp_path: Path) -> None:
    layout, layer = flipped_layout
    recipe = copy_hello(tmp_path / "hello")
    outcome = xarch_in_process("verify", "-f", str(recipe), "--platform", "amd64,arm64",
                               "--against", str(layout))
    assert outcome.code == INPUT, outcome
    outcome.one_error_line(str(layout), layer)


@pytest.fixture
def flipped_oci_archive(hello_build: HelloBuild, tmp_path: Path) -> tuple[Path, str]:
    archive = tmp_path / "bad.oci.tar"
    shutil.copyfile(hello_build.oci_archive, archive)
    _, manifest = first_manifest(hello_build.layout)
    layer = manifest["layers"][-1]["digest"]
    flip_byte(archive, tar_member_offset(archive, f"blobs/sha256/{layer[7:]}") + 100)
    return archive, layer


@pytest.mark.parametrize("command", ["inspect", "diff", "load"])
def test_an_oci_archive_with_a_flipped_layer_byte_is_refused(
        command: str, hello_build: HelloBuild, flipped_oci_archive: tuple[Path, str]) -> None:
    archive, layer = flipped_oci_archive
    args = {
        "inspect": ["inspect", str(archive)],
        "diff": ["diff", str(hello_build.oci_archive), str(archive)],
        "load": ["load", str(archive), "--platform", "amd64", "-t", "xarch-never-loaded:1"],
    }[command]
    outcome = xarch_in_process(*args)
    assert outcome.code == INPUT, outcome
    outcome.one_error_line(layer)


def test_push_refuses_an_oci_archive_with_a_flipped_layer_byte_before_writing(
        registry: Registry, flipped_oci_archive: tuple[Path, str]) -> None:
    """The archive is read in place, as a layout folder is: the registry is asked which blobs it
    lacks, each of those is hashed before the first is sent, and nothing is written."""
    archive, layer = flipped_oci_archive
    outcome = xarch_in_process("push", str(archive), f"{registry.host}/never/pushed:1", "-q")
    assert outcome.code == INPUT, outcome
    outcome.one_error_line(layer)
    assert not re.search(r'"(POST|PUT|PATCH|DELETE) /v2/never/pushed', registry.log.read_text())


@pytest.mark.parametrize("command", ["inspect", "diff", "load"])
def test_a_docker_archive_with_a_flipped_layer_byte_is_refused(command: str, hello_build: HelloBuild,
                                                                tmp_path: Path) -> None:
    good = hello_build.docker_archives["amd64"]
    archive = tmp_path / "bad.docker.tar"
    shutil.copyfile(good, archive)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    layer_path = manifest[0]["Layers"][-1]
    flip_byte(archive, tar_member_offset(archive, layer_path) + 100)
    args = {
        "inspect": ["inspect", str(archive)],
        "diff": ["diff", str(good), str(archive)],
        "load": ["load", str(archive)],  # refused before Docker is asked
    }[command]
    outcome = xarch_in_process(*args)
    assert outcome.code == INPUT, outcome
    outcome.one_error_line(str(archive), layer_path.rsplit("/", 1)[-1], "does not match its digest")


# ---- a descriptor that states the wrong size ---------------------------------------------------

@pytest.mark.parametrize("delta", [1, -1])
@pytest.mark.parametrize("command", ["inspect", "diff", "load", "push"])
def test_a_layer_descriptor_with_the_wrong_size_is_refused(delta: int, command: str, hello_build: HelloBuild,
                                                            tmp_path: Path) -> None:
    layout = tmp_path / "bad"
    shutil.copytree(hello_build.layout, layout)
    _, manifest = first_manifest(layout)
    layer = manifest["layers"][-1]
    rechain(layout, lambda m: m["layers"][-1].update(size=layer["size"] + delta))
    args = {
        "inspect": ["inspect", str(layout)],
        "diff": ["diff", str(hello_build.layout), str(layout)],
        "load": ["load", str(layout), "--platform", "amd64", "-t", "xarch-never-loaded:1"],
        "push": ["push", str(layout), "127.0.0.1:9/never/pushed:1", "-q"],
    }[command]
    outcome = xarch_in_process(*args)
    assert outcome.code == INPUT, outcome
    says = "more than the descriptor's" if delta < 0 else f"{layer['size']} bytes, the descriptor says"
    outcome.one_error_line(str(layout), layer["digest"], says)


# ---- a registry that answers other bytes --------------------------------------------------------

def registry_blob(registry: Registry, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return registry.workdir / "storage/docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


@pytest.fixture
def published(registry: Registry, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    layout = make_layout(tmp_path / "published", ["amd64", "arm64"])
    ref = f"{registry.host}/verify/image:v1"
    push_layout(layout.path, ref, settings=Settings(insecure=True))
    yield ref, layout


def test_a_registry_serving_a_changed_layer_is_exit_4_and_writes_nothing(
        registry: Registry, published: tuple[str, Any], tmp_path: Path) -> None:
    ref, layout = published
    manifest = json.loads(layout.manifests["amd64"])
    layer = manifest["layers"][-1]["digest"]
    flip_byte(registry_blob(registry, layer), 50)
    with pytest.raises(CorruptAnswer, match=rf"{registry.host}: GET blob verify/image@{layer}: blob {layer} "
                                            "does not match its digest") as caught:
        pull_layout(ref, tmp_path / "pulled", settings=Settings(insecure=True))
    assert caught.value.exit_code == NETWORK
    assert not (tmp_path / "pulled").exists()
    # Through the CLI: diff pulls the reference and keeps the registry's exit code.
    outcome = xarch_in_process("diff", "--insecure", ref, str(layout.path))
    assert outcome.code == NETWORK, outcome
    outcome.one_error_line(layer)


def test_a_registry_serving_a_changed_manifest_is_exit_4(registry: Registry,
                                                         published: tuple[str, Any]) -> None:
    # docker-registry checks a stored manifest itself (HTTP 500), so the lie comes from a proxy.
    _, layout = published
    manifest_digest = sha256_digest(layout.manifests["arm64"])

    def lie(path: str, body: bytes) -> bytes:
        return body.replace(b'"schemaVersion":2', b'"schemaVersion":3') if manifest_digest in path else body

    with FlakyProxy(registry.host, rewrite=lie) as proxy:
        ref = f"{proxy.host}/verify/image:v1"
        says = f"verify/image@{manifest_digest}: content does not match"
        with pytest.raises(CorruptAnswer, match=says) as caught:
            fetch_image(ref, settings=Settings(insecure=True), with_configs=False)
        assert caught.value.exit_code == NETWORK
        outcome = xarch_in_process("diff", "--insecure", ref, str(layout.path))
        assert outcome.code == NETWORK, outcome
        outcome.one_error_line(manifest_digest)


def test_a_registry_serving_a_longer_config_is_cut_off_at_the_descriptors_size(
        registry: Registry, published: tuple[str, Any]) -> None:
    ref, layout = published
    config = json.loads(layout.manifests["amd64"])["config"]
    stored = registry_blob(registry, config["digest"])
    stored.write_bytes(stored.read_bytes() + b" ")
    # Read no further than the descriptor's size: the answer is refused as soon as it passes it
    # (the read model streams it through xarch.oci.verified, which words it so).
    with pytest.raises(CorruptAnswer, match=f"blob verify/image@{config['digest']}: .*"
                                            f"more than the descriptor's {config['size']} bytes"):
        fetch_image(ref, settings=Settings(insecure=True))


# ---- the content-addressed store (downloads, image cache) --------------------------------------

def test_a_corrupt_store_entry_is_dropped_not_served(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    sha = store.put_bytes(b"a .deb, say")
    assert store.verified(sha) and store.read(f"sha256:{sha}") == b"a .deb, say"
    os.chmod(store.path(sha), 0o644)
    flip_byte(store.path(sha), 3)
    assert store.read(f"sha256:{sha}") is None
    assert not store.path(sha).exists()  # so the next fetch or build stores it again
    store.put_bytes(b"a .deb, say")
    flip_byte(store.path(sha), 0)
    assert not store.verified(sha)
    assert not store.path(sha).exists()


def test_a_descriptor_whose_platform_is_not_an_object_is_refused() -> None:
    """Found by the input fuzzer under CPython 3.10: an index entry with `"platform": 2` reached
    platform_name in push and raised AttributeError (exit 70)."""
    from xarch.oci.verified import BadDescriptor, descriptor_fields

    good = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "0" * 64,
            "size": 1}
    assert descriptor_fields(good, "x")[2] == 1
    for field_name in ("platform", "annotations"):
        with pytest.raises(BadDescriptor, match=f"{field_name} that is not a JSON object"):
            descriptor_fields({**good, field_name: 2}, "x")
