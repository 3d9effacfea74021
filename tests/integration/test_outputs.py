"""Outputs (xarch/build/outputs.py, xarch/oci/layout.py, dockerarchive.py, atomic.py) and `xarch inspect`.

One build of the example (session fixture) is written as an OCI layout folder, an
oci-archive and a docker-archive per platform; each is checked as files and bytes, and read
back by `xarch inspect` as a table and as JSON.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.hello import (
    HELLO,
    REPO,
    HelloBuild,
    copy_hello,
    run_ok,
    run_xarch,
)
from tests.support.needs import need_tool
from xarch.oci.atomic import atomic_dir, atomic_file

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob(layout: Path, digest: str) -> bytes:
    data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def layout_files(layout: Path) -> dict[str, bytes]:
    return {str(p.relative_to(layout)): p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()}


def test_oci_layout_is_complete_and_every_blob_matches_its_digest(hello_build: HelloBuild) -> None:
    layout = hello_build.layout
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    top = json.loads((layout / "index.json").read_text())
    assert top["schemaVersion"] == 2
    [entry] = top["manifests"]
    assert entry["mediaType"] == INDEX
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    assert entry["digest"] == hello_build.index_digest
    index = json.loads(blob(layout, entry["digest"]))
    reached = {entry["digest"]}
    platforms = []
    for descriptor in index["manifests"]:
        assert descriptor["mediaType"] == MANIFEST
        platforms.append(descriptor["platform"])
        manifest = json.loads(blob(layout, descriptor["digest"]))
        assert manifest["annotations"] == {"org.opencontainers.image.title": "hello"}
        config = json.loads(blob(layout, manifest["config"]["digest"]))
        assert config["architecture"] == descriptor["platform"]["architecture"]
        assert config["config"]["Entrypoint"] == ["/bin/busybox", "sh", "-c"]
        assert config["config"]["Labels"]["org.opencontainers.image.title"] == "hello"
        assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == 2
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            assert layer["mediaType"] == LAYER
            data = blob(layout, layer["digest"])
            assert len(data) == layer["size"]
            assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == diff_id
            reached.add(layer["digest"])
        reached |= {descriptor["digest"], manifest["config"]["digest"]}
    assert platforms == [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]
    # Nothing in blobs/ that the index does not reach, nothing else in the folder.
    expected = {f"blobs/sha256/{d[7:]}" for d in reached} | {"oci-layout", "index.json"}
    assert expected == set(layout_files(layout))


def test_oci_archive_holds_the_layout_byte_for_byte(hello_build: HelloBuild) -> None:
    expected = layout_files(hello_build.layout)
    with tarfile.open(hello_build.oci_archive) as archive:
        members = archive.getmembers()
        files = {m.name: archive.extractfile(m).read() for m in members if m.isfile()}  # type: ignore[union-attr]
        assert {m.name for m in members if m.isdir()} == {"blobs", "blobs/sha256"}
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 1_700_000_000)}
    assert files == expected


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_docker_archive_names_config_tags_and_the_layout_layers(hello_build: HelloBuild, arch: str) -> None:
    layout_blobs = layout_files(hello_build.layout)
    with tarfile.open(hello_build.docker_archives[arch]) as archive:
        read = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    [manifest] = json.loads(read["manifest.json"])
    assert manifest["RepoTags"] == ["hello:1.0"]
    config = json.loads(read[manifest["Config"]])
    assert config["architecture"] == arch
    assert len(manifest["Layers"]) == 2
    for path in [manifest["Config"], *manifest["Layers"]]:
        assert read[path] == layout_blobs[path]  # the very bytes of the OCI layout: digests carry over
    assert set(read) == {"manifest.json", manifest["Config"], *manifest["Layers"]}


def _inspect(target: Path, *flags: str) -> str:
    return run_ok("inspect", str(target), *flags).stdout


def test_inspect_json_of_layout_and_oci_archive_equals_the_build_summary(hello_build: HelloBuild) -> None:
    for target in (hello_build.layout, hello_build.oci_archive):
        summary = json.loads(_inspect(target, "--json"))
        assert summary["index_digest"] == hello_build.index_digest
        assert summary["images"] == hello_build.summary["images"]
        assert summary["source"] == str(target)


def test_inspect_table_of_layout_and_oci_archive(hello_build: HelloBuild) -> None:
    for target in (hello_build.layout, hello_build.oci_archive):
        text = _inspect(target)
        assert f"index digest: {hello_build.index_digest}" in text
        for row in hello_build.summary["images"]:
            line = next(line for line in text.splitlines() if row["platform"] in line)
            assert row["manifest_digest"] in line
            assert line.rstrip(" │").endswith(" 2")  # the layers column


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_inspect_of_a_docker_archive(hello_build: HelloBuild, arch: str) -> None:
    summary = json.loads(_inspect(hello_build.docker_archives[arch], "--json"))
    [row] = summary["images"]
    built = next(r for r in hello_build.summary["images"] if r["platform"] == f"linux/{arch}")
    assert row["platform"] == f"linux/{arch}"
    assert (row["compressed_size"], row["layers"]) == (built["compressed_size"], built["layers"])
    assert summary["index_digest"] is None
    assert f"linux/{arch}" in _inspect(hello_build.docker_archives[arch])


def test_build_json_matches_the_written_layout(hello_build: HelloBuild) -> None:
    index = json.loads(blob(hello_build.layout, hello_build.index_digest))
    rows = hello_build.summary["images"]
    assert [r["manifest_digest"] for r in rows] == [d["digest"] for d in index["manifests"]]
    for row in rows:
        manifest = json.loads(blob(hello_build.layout, row["manifest_digest"]))
        assert row["compressed_size"] == sum(layer["size"] for layer in manifest["layers"])


def _old_outputs(folder: Path) -> tuple[Path, Path, Path, dict[str, bytes]]:
    layout, archive, docker = folder / "layout", folder / "image.oci.tar", folder / "image.docker.tar"
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text("old oci-layout")  # a layout: the only folder oci: may replace
    (layout / "index.json").write_text("old index")
    archive.write_bytes(b"old oci-archive")
    docker.write_bytes(b"old docker-archive")
    return layout, archive, docker, snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failing_second_platform_writes_no_output(tmp_path: Path, hello_binaries: Path) -> None:
    recipe = copy_hello(tmp_path / "hello")
    (tmp_path / "hello" / "bin" / "arm64" / "busybox").unlink()
    layout, archive, docker, before = _old_outputs(tmp_path / "out")
    fresh = tmp_path / "out" / "fresh"
    result = run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{fresh}", "-o", f"oci:{layout}",
                       "-o", f"oci-archive:{archive}", "-o", f"docker-archive:{docker}",
                       "--docker-platform", "amd64")
    assert result.returncode == 2
    assert "platform arm64" in result.stderr
    assert not fresh.exists()
    assert snapshot(tmp_path / "out") == before  # old outputs intact, no temporary leftovers


def test_a_bad_docker_platform_writes_no_output(tmp_path: Path, hello_binaries: Path) -> None:
    fresh = tmp_path / "out" / "fresh"
    result = run_xarch("build", "-f", str(HELLO), "-q", "--platform", "amd64", "-o", f"oci:{fresh}",
                       "-o", f"docker-archive:{tmp_path / 'out' / 'd.tar'}", "--docker-platform", "arm64")
    assert result.returncode == 2
    assert not fresh.exists()


def test_a_rebuild_replaces_every_old_output_whole(tmp_path: Path, hello_build: HelloBuild) -> None:
    layout, archive, docker, _ = _old_outputs(tmp_path / "out")
    run_ok("build", "-f", str(HELLO), "-q", "-o", f"oci:{layout}", "-o", f"oci-archive:{archive}",
           "-o", f"docker-archive:{docker}", "--docker-platform", "arm64")
    assert layout_files(layout) == layout_files(hello_build.layout)
    assert archive.read_bytes() == hello_build.oci_archive.read_bytes()
    assert docker.read_bytes() == hello_build.docker_archives["arm64"].read_bytes()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["image.docker.tar", "image.oci.tar", "layout"]


def test_default_output_is_dist_name(tmp_path: Path, hello_binaries: Path, hello_build: HelloBuild) -> None:
    run_ok("build", "-f", str(HELLO), "-q", cwd=tmp_path)
    assert layout_files(tmp_path / "dist" / "hello") == layout_files(hello_build.layout)


def test_atomic_dir_keeps_the_old_folder_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "half").write_text("half")
        raise RuntimeError("interrupted")
    assert snapshot(tmp_path) == {"out/old": b"old"}
    with atomic_dir(target) as staging:
        (staging / "new").write_text("new")
    assert snapshot(tmp_path) == {"out/new": b"new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_file_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "image.tar"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as handle:
        handle.write(b"half")
        raise KeyboardInterrupt
    assert snapshot(tmp_path) == {"image.tar": b"old"}
    with atomic_file(target) as handle:
        handle.write(b"new")
    assert snapshot(tmp_path) == {"image.tar": b"new"}
    assert target.stat().st_mode & 0o777 == 0o644


def test_oci_archive_and_docker_archive_tars_are_readable_by_gnu_tar(hello_build: HelloBuild) -> None:
    for target in (hello_build.oci_archive, *hello_build.docker_archives.values()):
        result = subprocess.run([need_tool("tar"), "-tf", str(target)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0 and result.stderr == ""
        with tarfile.open(target) as archive:
            names = [m.name + ("/" if m.isdir() else "") for m in archive.getmembers()]
            assert result.stdout.split() == names


def _big_recipe(folder: Path, megabytes: int) -> Path:
    """A recipe whose output takes long enough to write that it can be interrupted midway."""
    rng = random.Random(7)
    for arch in ("amd64", "arm64"):
        (folder / "bin" / arch).mkdir(parents=True)
        # Random bytes do not compress, so every blob is as big as its file.
        (folder / "bin" / arch / "blob").write_bytes(rng.randbytes(megabytes * 1_000_000))
    recipe = folder / "xarch.yaml"
    recipe.write_text("name: big\nplatforms: [amd64, arm64]\nepoch: 1\nfiles:\n"
                      "  - src: bin/{arch}/blob\n    dst: /blob\n")
    return recipe


XARCH = ("-m", "xarch.cli")  # the `xarch` script
DOCKER_XARCH = ("-c", "from xarch.cli.plugin import docker_plugin_main; docker_plugin_main()", "xarch")


def _interrupt_while_writing(recipe: Path, target: Path, signal_number: int,
                             entry: tuple[str, ...] = XARCH) -> tuple[int, str]:
    """Start a build into oci:TARGET, send SIGNAL once its staging folder holds a blob. A build
    that ends before the signal lands (a loaded machine: the poll below saw the blob late) is
    started again, with the old output put back, a few times: what is tested is the interrupted
    build, not the race. Each try has a cache of its own, so each writes every layer. ENTRY: the
    interpreter's arguments that run the command line (`xarch`, or `docker xarch`)."""
    for attempt in range(5):
        cache = target.parent.parent / f"cache-{attempt}"
        returncode, stderr = _interrupt_once(recipe, target, signal_number, cache, entry)
        if returncode != 0:
            return returncode, stderr
        shutil.rmtree(target)
        _old_outputs(target.parent)
    pytest.fail("the build finished before its output could be interrupted, 5 times")


def _interrupt_once(recipe: Path, target: Path, signal_number: int, cache: Path,
                    entry: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XARCH_CACHE": str(cache)}
    process = subprocess.Popen([sys.executable, *entry, "build", "-f", str(recipe), "-q",
                                "-o", f"oci:{target}"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            staging = list(target.parent.glob(f".{target.name}.tmp-*/blobs/sha256/*"))
            if staging:
                os.kill(process.pid, signal_number)
                break
            time.sleep(0.002)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_build_leaves_the_old_output(tmp_path: Path, signal_name: str) -> None:
    recipe = _big_recipe(tmp_path / "big", 40)
    out = tmp_path / "out"
    layout, _, _, before = _old_outputs(out)
    returncode, stderr = _interrupt_while_writing(recipe, layout, getattr(signal, signal_name))
    assert returncode != 0
    assert "Traceback" not in stderr
    assert snapshot(layout) == {"index.json": b"old index", "oci-layout": b"old oci-layout"}
    leftovers = sorted(p.name for p in out.iterdir() if p.name.startswith(".layout.tmp-"))
    if signal_name == "SIGINT":
        assert returncode == 130 and stderr.strip() == "xarch: interrupted"
        assert leftovers == []  # cleaned up on the way out
    if signal_name == "SIGKILL":
        # Nothing can clean up after SIGKILL; what is left is a hidden sibling, never the target.
        assert all(name.startswith(".layout.tmp-") for name in leftovers)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [XARCH, DOCKER_XARCH], ids=["xarch", "docker-xarch"])
def test_sigterm_cleans_up_like_sigint(tmp_path: Path, entry: tuple[str, ...]) -> None:
    # `docker xarch` left its staging folders: it ran the command line without xarch's SIGTERM handler.
    recipe = _big_recipe(tmp_path / "big", 40)
    out = tmp_path / "out"
    layout, _, _, _ = _old_outputs(out)
    returncode, stderr = _interrupt_while_writing(recipe, layout, signal.SIGTERM, entry)
    assert returncode != 0 and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
