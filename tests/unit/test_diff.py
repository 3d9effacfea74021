"""`xarch diff` on real layouts, oci-archives and docker-archives written by xarch's OCI core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.oci_images import EPOCH, PLATFORMS, Change, base_entries, make_artifact, replace_entry
from xarch.diff import DiffError, diff_paths
from xarch.diff.compare import Difference, DiffResult
from xarch.oci.compress import compressor_id
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.index import build_index
from xarch.oci.layer import build_layer
from xarch.oci.layout import Artifact, write_layout, write_oci_archive
from xarch.oci.tree import Entry
from xarch.oci.verified import BlobMismatch

AMD64 = "linux/amd64"


def layout(tmp_path: Path, name: str, **kwargs: object) -> str:
    target = tmp_path / name
    write_layout(make_artifact(**kwargs), target)  # type: ignore[arg-type]
    return str(target)


FULL_CHAIN = ("layer 1 of linux/amd64", "config of linux/amd64", "manifest of linux/amd64", "index")


def only(result: DiffResult, platform: str = AMD64) -> list[Difference]:
    return [d for d in result.differences if d.platform == platform]


def test_identical_layouts(tmp_path: Path) -> None:
    result = diff_paths(layout(tmp_path, "a"), layout(tmp_path, "b"))
    assert result.identical
    assert result.differences == []
    assert result.digests["index"][0] == result.digests["index"][1]


@pytest.mark.parametrize(("change", "path", "field", "a", "b"), [
    (replace_entry("etc/motd", data=b"bonjour\n"), "etc/motd", "content", None, None),
    (replace_entry("etc/motd", mode=0o600), "etc/motd", "mode", "0644", "0600"),
    (replace_entry("etc/motd", mtime=EPOCH - 100), "etc/motd", "mtime", EPOCH, EPOCH - 100),
    (replace_entry("etc/motd", uid=1000, gid=1000), "etc/motd", "owner", "0:0", "1000:1000"),
    (replace_entry("etc/motd", xattrs=(("user.note", b"x"),)), "etc/motd", "xattrs", {}, {"user.note": "x"}),
])
def test_file_level_difference_changes_layer_config_manifest_index(
        tmp_path: Path, change: Change, path: str, field: str, a: object, b: object) -> None:
    result = diff_paths(layout(tmp_path, "a"), layout(tmp_path, "b", change=change))
    differences = only(result)
    rows = [(d.where, d.item, d.field) for d in differences if d.field == field]
    assert rows == [("layer 1 (xarch layer app)", path, field)]
    named = next(d for d in differences if d.field == field)
    if a is not None:
        assert (named.a, named.b) == (a, b)
    assert named.changes == FULL_CHAIN
    assert {d.item for d in differences} == {path}  # nothing else is blamed


def test_content_difference_gives_both_hashes(tmp_path: Path) -> None:
    b = layout(tmp_path, "b", change=replace_entry("etc/motd", data=b"bye\n"))
    result = diff_paths(layout(tmp_path, "a"), b)
    content = next(d for d in only(result) if d.field == "content")
    import hashlib
    assert content.a == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert content.b == "sha256:" + hashlib.sha256(b"bye\n").hexdigest()
    size = next(d for d in only(result) if d.field == "size")
    assert (size.a, size.b) == (6, 4)


def test_symlink_target(tmp_path: Path) -> None:
    b = layout(tmp_path, "b", change=replace_entry("bin/sh", linkname="busybox"))
    [difference] = only(diff_paths(layout(tmp_path, "a"), b))
    assert (difference.item, difference.field) == ("bin/sh", "link target")
    assert (difference.a, difference.b) == ("tool", "busybox")
    assert difference.where == "layer 0 (xarch layer base)"
    assert difference.changes[0] == "layer 0 of linux/amd64"


def test_added_and_removed_files(tmp_path: Path) -> None:
    def add(entries: dict[str, Entry]) -> None:
        entries["etc/new"] = Entry("etc/new", "file", 0o644, data=b"new")
        del entries["etc/config"]

    result = diff_paths(layout(tmp_path, "a"), layout(tmp_path, "b", change=add))
    found = {(d.item, d.field): d for d in only(result)}
    assert set(found) == {("etc/new", "added"), ("etc/config", "removed")}
    assert found[("etc/new", "added")].a is None and "3 bytes" in found[("etc/new", "added")].b
    assert found[("etc/new", "added")].changes == FULL_CHAIN


def test_config_env_var_changes_config_manifest_index_not_layers(tmp_path: Path) -> None:
    result = diff_paths(layout(tmp_path, "a"), layout(tmp_path, "b", env=("PATH=/bin", "DEBUG=1")))
    [difference] = only(result)
    assert (difference.where, difference.item, difference.field, difference.b) == (
        "config", "config.Env DEBUG", "added", "1")
    assert difference.changes == ("config of linux/amd64", "manifest of linux/amd64", "index")
    assert not any(name.startswith("layer") for name in result.changed_digests())


def test_index_annotation_changes_only_the_index(tmp_path: Path) -> None:
    result = diff_paths(layout(tmp_path, "a"), layout(tmp_path, "b", index_annotations={"k": "w"}))
    [difference] = result.differences
    assert (difference.platform, difference.where, difference.item, difference.a, difference.b) == (
        "", "index", "annotations k", "v", "w")
    assert difference.changes == ("index",)
    assert result.changed_digests() == ["index"]


def test_platform_option_limits_the_comparison(tmp_path: Path) -> None:
    b = layout(tmp_path, "b", change=replace_entry("etc/motd", data=b"x"))
    result = diff_paths(layout(tmp_path, "a"), b, platform="arm64")
    assert {d.platform for d in result.differences} == {"linux/arm64/v8"}
    with pytest.raises(DiffError, match="riscv64"):
        diff_paths(layout(tmp_path, "a2"), b, platform="riscv64")


def test_layer_inserted_is_matched_by_name(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write_layout(make_artifact(), a)
    entries = list(base_entries().values())
    layers = [build_layer("base", [e for e in entries if e.path.startswith("bin")], EPOCH, 6),
              build_layer("extra", [Entry("opt", "dir", 0o755)], EPOCH, 6),
              build_layer("app", [e for e in entries if not e.path.startswith("bin")], EPOCH, 6)]
    image = build_image(PLATFORMS[0], layers, RuntimeConfig(cmd=["/bin/sh"], env=["PATH=/bin"]), EPOCH,
                        compressor_id(6), {"org.opencontainers.image.title": "t"})
    index = build_index([image.manifest_descriptor], {"k": "v"})
    write_layout(Artifact(index, (image,), "1.0"), tmp_path / "b")
    result = diff_paths(str(a), str(tmp_path / "b"), platform="amd64")
    layer_rows = [(d.where, d.item, d.field) for d in result.differences if d.where.startswith("layer")]
    assert layer_rows == [("layer 1 (xarch layer extra)", "(whole layer)", "added")]


def test_oci_layout_and_oci_archive_of_one_build_are_identical(tmp_path: Path) -> None:
    artifact = make_artifact()
    write_layout(artifact, tmp_path / "layout")
    write_oci_archive(artifact, tmp_path / "image.tar", EPOCH)
    result = diff_paths(str(tmp_path / "layout"), f"oci-archive:{tmp_path / 'image.tar'}")
    assert result.identical, result.differences


def test_oci_archive_difference(tmp_path: Path) -> None:
    write_oci_archive(make_artifact(), tmp_path / "a.tar", EPOCH)
    write_oci_archive(make_artifact(change=replace_entry("etc/motd", data=b"x")), tmp_path / "b.tar", EPOCH)
    result = diff_paths(str(tmp_path / "a.tar"), str(tmp_path / "b.tar"))
    assert ("etc/motd", "content") in {(d.item, d.field) for d in only(result)}


def test_docker_archives(tmp_path: Path) -> None:
    first, second = make_artifact(), make_artifact(change=replace_entry("etc/motd", data=b"x"))
    write_docker_archive(first.images[0], ["t:1"], tmp_path / "a.tar", EPOCH)
    write_docker_archive(second.images[0], ["t:1"], tmp_path / "b.tar", EPOCH)
    result = diff_paths(str(tmp_path / "a.tar"), str(tmp_path / "b.tar"))
    content = next(d for d in result.differences if d.field == "content")
    assert (content.platform, content.item) == (AMD64, "etc/motd")
    # A docker-archive has no manifest or index: only the digests it holds are named.
    assert content.changes == ("layer 1 of linux/amd64", "config of linux/amd64")
    # The same image as a docker-archive and as an OCI layout: identical for that platform.
    write_layout(first, tmp_path / "layout")
    same = diff_paths(str(tmp_path / "layout"), f"docker-archive:{tmp_path / 'a.tar'}", platform="amd64")
    assert same.identical, same.differences


def test_corrupt_blob_is_an_error_naming_it(tmp_path: Path) -> None:
    a, b = layout(tmp_path, "a"), layout(tmp_path, "b", change=replace_entry("etc/motd", data=b"x"))
    def blob(digest: str) -> Path:
        return Path(b) / "blobs/sha256" / digest.split(":")[1]

    top = json.loads((Path(b) / "index.json").read_text())
    index = json.loads(blob(top["manifests"][0]["digest"]).read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    layer = blob(manifest["layers"][1]["digest"])
    layer.write_bytes(layer.read_bytes()[:-8] + b"\x00" * 8)
    # Every layer is checked when the layout is opened, not only those whose files are compared.
    with pytest.raises(BlobMismatch, match=rf"{b}: blob {manifest['layers'][1]['digest']} does not match"):
        diff_paths(a, b)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from xarch.cli import run; from xarch.cli.diff import diff_command; " \
           "run(diff_command, sys.argv[1:], 'xarch diff')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], check=False)


def test_cli_exit_codes_table_and_json(tmp_path: Path) -> None:
    a, same = layout(tmp_path, "a"), layout(tmp_path, "same")
    b = layout(tmp_path, "b", change=replace_entry("etc/motd", mode=0o600))
    identical = run_cli(a, same)
    assert identical.returncode == 0, identical.stderr
    assert "identical" in identical.stdout
    different = run_cli(a, b)
    assert different.returncode == 1, different.stderr
    assert "etc/motd" in different.stdout and "mode" in different.stdout
    as_json = run_cli("--json", a, b)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["identical"] is False
    expected = {"item": "etc/motd", "field": "mode", "a": "0644", "b": "0600"}
    assert expected.items() <= data["differences"][0].items()
    missing = run_cli(a, str(tmp_path / "nothing"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nothing: no such file or folder" in missing.stderr


def docker_save_archive(target: Path, files: dict[str, bytes]) -> None:
    """An archive shaped like `docker save` writes it: uncompressed layer.tar files named by folder,
    written by tarfile (uname/gname set, GNU format), not by xarch's writer."""
    import hashlib
    import io
    import tarfile

    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.GNU_FORMAT) as layer:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uname, info.gname = len(data), EPOCH, "root", "root"
            layer.addfile(info, io.BytesIO(data))
    layer_bytes = layer_buffer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "history": [{"created_by": "COPY . /"}]}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["t:1"], "Layers": ["abc/layer.tar"]}])
    members = (("manifest.json", manifest.encode()), (config_name, config), ("abc/layer.tar", layer_bytes))
    with tarfile.open(target, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_docker_save_style_archives_with_uncompressed_layers(tmp_path: Path) -> None:
    docker_save_archive(tmp_path / "a.tar", {"var/log/apt/history.log": b"Start-Date: 1\n", "app": b"same"})
    docker_save_archive(tmp_path / "b.tar", {"var/log/apt/history.log": b"Start-Date: 2\n", "app": b"same"})
    result = diff_paths(str(tmp_path / "a.tar"), f"docker-archive:{tmp_path / 'b.tar'}")
    [difference] = result.differences
    assert (difference.platform, difference.where, difference.item, difference.field) == (
        AMD64, "layer 0 (COPY . /)", "var/log/apt/history.log", "content")
    assert difference.changes == ("layer 0 of linux/amd64", "config of linux/amd64")


def test_json_keeps_the_bytes_of_names_that_are_not_utf8() -> None:
    """xarch.jsonbytes: readable text with U+FFFD, and the exact bytes beside it under KEY_base64."""
    import base64 as b64

    from xarch.jsonbytes import exact

    name = os.fsdecode(b"/srv/caf\xe9")
    out = exact({"path": name, "link": "", "list": [name], "n": 1, name: "key"})
    assert out["path"] == "/srv/caf\ufffd" and b64.b64decode(out["path_base64"]) == b"/srv/caf\xe9"
    assert out["list"] == ["/srv/caf\ufffd"] and "link_base64" not in out and out["n"] == 1
    assert out["/srv/caf\ufffd"] == "key"
    json.dumps(out).encode("utf-8")  # every string is Unicode now
