"""End to end: `xarch verify --against` a layout and a registry, `build --push`, `build --load`.

A real docker-registry on 127.0.0.1 (tests/support/registry.py) and a real dockerd.
Each verification runs with its own empty XARCH_CACHE, so it is a rebuild, not a lookup.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import unique_tag
from tests.support.e2e import EPOCH, index_digest, manifests, xarch, xarch_ok
from tests.support.needs import need_tool
from tests.support.registry import Registry
from xarch import platforms


def make_recipe(folder: Path, content: str = "version 1\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.txt").write_text(content)
    (folder / "xarch.yaml").write_text(f"""\
name: publish-e2e
tag: v1
platforms: [amd64, arm64]
epoch: {EPOCH}
files:
  - {{src: data.txt, dst: /data.txt, mode: "0644"}}
config:
  cmd: ["/data.txt"]
""")
    return folder / "xarch.yaml"


def rows(stdout: str) -> dict[str, str]:
    """platform (or "index") → the result column of verify's table."""
    found = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) == 4 and (cells[0].startswith("linux/") or cells[0] == "index"):
            found[cells[0]] = cells[3]
    return found


MATCH = {"linux/amd64": "same", "linux/arm64": "same", "index": "same"}
MISMATCH = {"linux/amd64": "DIFFERS", "linux/arm64": "DIFFERS", "index": "DIFFERS"}


def test_verify_against_a_layout(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "src")
    published = tmp_path / "published"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{published}", cache=tmp_path / "cache")
    result = xarch("verify", "-f", str(recipe), "--against", str(published), cache=tmp_path / "verify-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(result.stdout) == MATCH
    assert "the published image is what this recipe builds" in result.stdout
    make_recipe(tmp_path / "src", "version 2\n")
    result = xarch("verify", "-f", str(recipe), "--against", str(published), cache=tmp_path / "verify-cache2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert rows(result.stdout) == MISMATCH
    assert "does NOT match" in result.stdout
    as_json = xarch("verify", "-f", str(recipe), "--against", str(published), "--json",
                    cache=tmp_path / "verify-cache2")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["identical"] is False
    published_digests = {row["platform"]: row["published"] for row in report["rows"]}
    assert published_digests == {**{f"linux/{arch}": digest for arch, digest in manifests(published).items()},
                                 "index": index_digest(published)}
    assert {row["status"] for row in report["rows"]} == {"differs"}


def test_build_push_then_verify_against_the_registry(tmp_path: Path, registry: Registry) -> None:
    recipe = make_recipe(tmp_path / "src")
    ref = f"{registry.host}/team/publish:v1"
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", "--push", ref, "--insecure",
             cache=tmp_path / "cache")
    result = xarch("verify", "-f", str(recipe), "--against", ref, "--insecure",
                   cache=tmp_path / "verify-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(result.stdout) == MATCH
    assert "the published image is what this recipe builds" in result.stdout
    for digest in manifests(out).values():
        assert digest in result.stdout  # what was pushed is what verify read back
    make_recipe(tmp_path / "src", "version 2\n")
    result = xarch("verify", "-f", str(recipe), "--against", ref, "--insecure",
                   cache=tmp_path / "verify-cache2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert rows(result.stdout) == MISMATCH
    assert "does NOT match" in result.stdout


def test_verify_against_rebuilds_rather_than_trusting_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    recipe = make_recipe(tmp_path / "src")
    published = tmp_path / "published"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{published}", cache=cache)
    first_entries = {p.name: p.read_bytes() for p in (cache / "images").iterdir()}
    # A cache entry that no longer describes what the recipe builds (a stale or tampered cache):
    # the entries of another recipe's build take the place of this recipe's.
    make_recipe(tmp_path / "src", "version 2\n")
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'other'}", cache=cache)
    other_entries = {json.loads(p.read_bytes())["platform"]["architecture"]: p.read_bytes()
                     for p in (cache / "images").iterdir() if p.name not in first_entries}
    make_recipe(tmp_path / "src")
    for name, entry in first_entries.items():
        (cache / "images" / name).write_bytes(other_entries[json.loads(entry)["platform"]["architecture"]])
    result = xarch("verify", "-f", str(recipe), "--against", str(published), cache=cache)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.docker
def test_build_load_puts_the_image_into_docker(tmp_path: Path, dockerd: docker.DockerClient,
                                               made_images: list[str]) -> None:
    recipe = make_recipe(tmp_path / "src", "loaded\n")
    tag = unique_tag("xarch-test/build-load")
    made_images.append(tag)
    result = xarch_ok("build", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out'}",
                      "--docker-platform", "amd64", "--load", tag, cache=tmp_path / "cache")
    assert f"loaded amd64 into Docker as {tag}" in result.stderr
    image = dockerd.images.get(tag)
    assert image.attrs["Architecture"] == "amd64"
    assert image.attrs["Config"]["Cmd"] == ["/data.txt"]
    container = dockerd.containers.create(tag)
    try:
        chunks, _ = container.get_archive("/data.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile("data.txt")
            assert member is not None and member.read() == b"loaded\n"
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_build_load_without_a_tag_uses_the_recipes_name_and_tag(tmp_path: Path, dockerd: docker.DockerClient,
                                                                 made_images: list[str]) -> None:
    recipe = make_recipe(tmp_path / "src", "default tag\n")
    name = unique_tag("xarch-test/build-load-default").partition(":")[0]
    recipe.write_text(recipe.read_text().replace("name: publish-e2e", f"name: {name}"))
    made_images.append(f"{name}:v1")
    # --load takes an optional value: an option right after it is not taken for a tag.
    result = xarch_ok("build", "-f", str(recipe), "--load", "-o", f"oci:{tmp_path / 'out'}",
                      cache=tmp_path / "cache")
    host = platforms.host()  # the platform --load picks when the recipe has several
    assert f"loaded {host.name} into Docker as {name}:v1" in result.stderr
    assert (tmp_path / "out" / "index.json").is_file()
    assert dockerd.images.get(f"{name}:v1").attrs["Architecture"] == host.architecture


# ---- a tampered index (issue 10, item 5), and archives taken for what they are (issue 11, kind 5) ----


def add_s390x_entry(layout: Path) -> tuple[str, str]:
    """Add a linux/s390x entry pointing at the amd64 image to LAYOUT's index, as an attacker would;
    returns (the amd64 manifest digest, the new index digest)."""
    top = json.loads((layout / "index.json").read_text())
    old = top["manifests"][0]["digest"]
    index = json.loads((layout / "blobs" / "sha256" / old.split(":")[1]).read_bytes())
    amd64 = next(d for d in index["manifests"] if d["platform"]["architecture"] == "amd64")
    index["manifests"].append({**amd64, "platform": {"architecture": "s390x", "os": "linux"}})
    data = json.dumps(index, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    top["manifests"][0].update(digest=digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(top))
    return amd64["digest"], digest


def tar_folder(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return target


def assert_tampering_named(result: subprocess.CompletedProcess[str], amd64: str, tampered_index: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    extra = f"  EXTRA: linux/s390x entry {amd64} published, but this recipe's rebuild has no such entry"
    assert extra in lines
    assert any(line.startswith(f"  DIFFERS: index {tampered_index}") for line in lines)
    assert rows(result.stdout) == {**MATCH, "linux/s390x": "EXTRA", "index": "DIFFERS"}
    assert "the published image is what this recipe builds" not in result.stdout
    assert "xarch diff" in result.stderr.strip().splitlines()[-1]


def test_verify_against_a_tampered_index(tmp_path: Path, registry: Registry) -> None:
    skopeo = need_tool("skopeo")
    recipe = make_recipe(tmp_path / "src")
    layout = tmp_path / "published"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{layout}", cache=tmp_path / "cache")
    amd64, tampered = add_s390x_entry(layout)
    ref = f"{registry.host}/team/tampered:v1"
    subprocess.run([skopeo, "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{layout}:v1", f"docker://{ref}"], check=True, capture_output=True, timeout=120)
    archive = tar_folder(layout, tmp_path / "published.tar")
    for against in (ref, str(layout), str(archive), f"oci-archive:{archive}"):
        result = xarch("verify", "-f", str(recipe), "--against", against, "--insecure",
                       cache=tmp_path / "verify-cache")
        assert_tampering_named(result, amd64, tampered)


def test_verify_against_an_oci_archive_never_goes_online(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "src")
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci-archive:{tmp_path / 'out.tar'}",
             cache=tmp_path / "cache")
    # Any registry request would go to a proxy that is not there.
    offline = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    result = xarch("verify", "-f", str(recipe), "--against", "out.tar", cwd=tmp_path,
                   cache=tmp_path / "verify-cache", extra_env=offline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "comparing with oci-archive out.tar" in result.stderr
    assert rows(result.stdout) == MATCH
    missing = xarch("verify", "-f", str(recipe), "--against", "gone.tar", cwd=tmp_path,
                    cache=tmp_path / "verify-cache", extra_env=offline)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "xarch: error: --against gone.tar: no such file or folder (a registry " \
        "image is written host/name:tag, user/name:tag or docker://name:tag)"


def test_could_not_fetch_is_not_a_verdict(tmp_path: Path, registry: Registry) -> None:
    recipe = make_recipe(tmp_path / "src")
    result = xarch("verify", "-f", str(recipe), "--against", f"{registry.host}/team/never-pushed:v1",
                   cache=tmp_path / "cache")
    assert result.returncode not in (0, 1), result.stdout + result.stderr
    assert "not found" in result.stderr and "NOT" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("xarch: error: ") and "Traceback" not in result.stderr
