"""The build pipeline (xarch/build/pipeline.py, contents.py, layering.py): trees, layers, determinism.

The determinism test runs the real CLI twice in different folders under a different umask,
TZ, LANG, cwd, source-file creation order, mtimes and group/other permission bits, and
compares every byte of every output.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.hello import (
    HELLO,
    copy_hello,
    run_ok,
    run_xarch,
)
from xarch.build.contents import recipe_tree
from xarch.build.layering import split_layers
from xarch.build.pipeline import BuildInputs, build
from xarch.oci.pathglob import matches
from xarch.platforms import get as get_platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, load

SHARE_FILES = {
    "README": b"hello docs\n",
    "scripts/run.sh": b"#!/bin/sh\necho run\n",
    "scripts/lib/util.sh": b"util\n",
    "data/a.txt": b"a\n",
    "data/b.txt": b"b\n",
    "data/z/deep.txt": b"deep\n",
}
EXECUTABLE = {"scripts/run.sh"}

EXTRA = """
  - src: share
    dst: /usr/share/hello
"""


def make_source(folder: Path, reverse: bool, strip_group_other: bool, seed: int) -> Path:
    """The hello example plus a folder copied without modes, created in a chosen order."""
    recipe = copy_hello(folder)
    text = recipe.read_text().replace('    mode: "0644"\n', '    mode: "0644"\n' + EXTRA.lstrip("\n"), 1)
    recipe.write_text(text)
    rng = random.Random(seed)
    names = sorted(SHARE_FILES, reverse=reverse)
    for name in names:
        path = folder / "share" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(SHARE_FILES[name])
        mode = 0o775 if name in EXECUTABLE else 0o664
        os.chmod(path, mode & ~0o077 if strip_group_other else mode)
    for path in folder.rglob("*"):
        stamp = rng.randrange(0, 2_000_000_000)
        os.utime(path, (stamp, stamp), follow_symlinks=False)
        if strip_group_other and path.is_dir():
            os.chmod(path, 0o700)
    return recipe


def build_all(recipe: Path, out: Path, umask: int, env: dict[str, str]) -> None:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "TZ", "SOURCE_DATE"))}
    full_env.update(env)
    # --no-cache and an empty cache: both builds must really run, not reuse a finished image.
    run_ok("build", "-f", str(recipe), "-q", "--no-cache", "--platform", "amd64,arm64",
           "-o", f"oci:{out / 'layout'}", "-o", f"oci-archive:{out / 'image.oci.tar'}",
           "-o", f"docker-archive:{out / 'image.docker.tar'}", "--docker-platform", "arm64",
           cwd=recipe.parent, env=full_env, preexec_fn=lambda: os.umask(umask), cache=out / "cache")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_builds_under_different_conditions_give_identical_bytes(
    tmp_path: Path, hello_binaries: Path
) -> None:
    first = make_source(tmp_path / "one" / "src", reverse=False, strip_group_other=False, seed=1)
    second = make_source(tmp_path / "elsewhere" / "deeper" / "src", reverse=True, strip_group_other=True,
                         seed=2)
    build_all(first, tmp_path / "out-one", 0o022, {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    build_all(second, tmp_path / "out-two", 0o077,
              {"TZ": "Pacific/Kiritimati", "LANG": "fr_FR.UTF-8", "LC_ALL": "fr_FR.UTF-8"})
    one, two = files_of(tmp_path / "out-one"), files_of(tmp_path / "out-two")
    assert sorted(one) == sorted(two)
    differing = [name for name in one if one[name] != two[name]]
    assert differing == []
    # The extra folder did reach the image, so the variations were really exercised.
    blobs = [data for name, data in one.items() if name.startswith("layout/blobs/")]
    layer_members: dict[str, tarfile.TarInfo] = {}
    for data in blobs:
        if data[:2] == b"\x1f\x8b":
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as layer:
                layer_members.update({m.name: m for m in layer.getmembers()})
    assert layer_members["usr/share/hello/scripts/run.sh"].mode == 0o755
    assert layer_members["usr/share/hello/data/a.txt"].mode == 0o644
    assert layer_members["usr/share/hello/data/z"].mode == 0o755
    assert {m.mtime for m in layer_members.values()} == {1_700_000_000}


@pytest.fixture
def hello(hello_binaries: Path) -> LoadedRecipe:
    return load(HELLO / "xarch.yaml")


def test_hello_tree_per_platform(hello: LoadedRecipe) -> None:
    for arch in ("amd64", "arm64"):
        tree = recipe_tree(hello, get_platform(arch))
        entries = {e.path: e for e in tree}
        assert list(entries) == ["bin", "bin/busybox", "bin/sh", "etc", "etc/motd", "tmp"]
        assert entries["bin/busybox"].source == (HELLO / "bin" / arch / "busybox").resolve()
        assert entries["bin/busybox"].mode == 0o755
        assert entries["bin/sh"].type == "symlink" and entries["bin/sh"].linkname == "busybox"
        assert entries["tmp"].mode == 0o1777
        assert entries["etc"].type == "dir" and entries["etc"].mode == 0o755
        assert {(e.uid, e.gid) for e in tree} == {(0, 0)}
        assert {e.mtime for e in tree} == {None}


def test_named_layers_split_by_ordered_globs(hello: LoadedRecipe) -> None:
    tree = recipe_tree(hello, get_platform("amd64"))
    layers = dict(split_layers(tree, hello.recipe.layers))
    assert sorted(e.path for e in layers["base"]) == ["bin", "bin/busybox", "bin/sh"]
    assert sorted(e.path for e in layers["app"]) == ["etc", "etc/motd", "tmp"]


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/bin/**", "bin", True),
    ("/bin/**", "bin/busybox", True),
    ("/bin/**", "binary", False),
    ("usr/*/app", "usr/bin/app", True),
    ("usr/*/app", "usr/local/bin/app", False),
    ("usr/**/app", "usr/local/bin/app", True),
    ("usr/**/app", "usr/app", True),
    ("**", "anything/at/all", True),
    ("etc/?otd", "etc/motd", True),
    ("etc/?otd", "etc/mmotd", False),
    ("a.b", "axb", False),
])
def test_layer_globs(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def _digests(loaded: LoadedRecipe, epoch: int = 1_700_000_000) -> dict[str, list[str]]:
    both = (get_platform("amd64"), get_platform("arm64"))
    artifact = build(BuildInputs(loaded, both, epoch, use_cache=False), Reporter(quiet=True))
    return {image.platform["architecture"]: [layer.descriptor.digest for layer in image.layers]
            for image in artifact.images}


def test_base_layer_does_not_move_when_only_the_app_changes(tmp_path: Path, hello_binaries: Path) -> None:
    recipe = copy_hello(tmp_path / "hello")
    before = _digests(load(recipe))
    (tmp_path / "hello" / "etc" / "motd").write_text("a different message\n")
    after = _digests(load(recipe))
    for arch in ("amd64", "arm64"):
        assert before[arch][0] == after[arch][0]  # base: /bin
        assert before[arch][1] != after[arch][1]  # app: /etc/motd


def test_epoch_reaches_every_timestamp(hello: LoadedRecipe) -> None:
    inputs = BuildInputs(hello, (get_platform("arm64"),), 86_400, use_cache=False)
    artifact = build(inputs, Reporter(quiet=True))
    image = artifact.images[0]
    config = json.loads(image.config_bytes)
    assert config["created"] == "1970-01-02T00:00:00Z"
    assert {h["created"] for h in config["history"]} == {"1970-01-02T00:00:00Z"}
    assert config["architecture"] == "arm64" and config["os"] == "linux"
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    for layer in image.layers:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.blob))) as archive:
            assert {m.mtime for m in archive.getmembers()} == {86_400}


def test_index_keeps_the_recipe_platform_order(hello: LoadedRecipe) -> None:
    both = (get_platform("amd64"), get_platform("arm64"))
    artifact = build(BuildInputs(hello, both, 1, use_cache=False), Reporter(quiet=True))
    index = json.loads(artifact.index_bytes)
    assert [d["platform"]["architecture"] for d in index["manifests"]] == ["amd64", "arm64"]
    assert index["annotations"] == {"org.opencontainers.image.title": "hello"}
    # Canonical JSON: sorted keys, no whitespace.
    assert artifact.index_bytes == json.dumps(index, sort_keys=True, separators=(",", ":")).encode()


def test_symlinks_and_hardlinks_in_a_copied_folder(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    (folder / "tree" / "sub").mkdir(parents=True)
    (folder / "tree" / "sub" / "file").write_text("x")
    os.symlink("sub/file", folder / "tree" / "link")
    os.link(folder / "tree" / "sub" / "file", folder / "tree" / "hard")
    recipe = "name: t\nplatforms: [amd64]\nfiles:\n  - src: tree\n    dst: /opt/t\n"
    (folder / "xarch.yaml").write_text(recipe)
    tree = recipe_tree(load(folder / "xarch.yaml"), get_platform("amd64"))
    entries = {e.path: e for e in tree}
    assert entries["opt/t/link"].type == "symlink" and entries["opt/t/link"].linkname == "sub/file"
    assert entries["opt/t/sub"].type == "dir"
    # A hard link on disk is two regular files in the image: its content, never the inode.
    assert entries["opt/t/hard"].type == "file" and entries["opt/t/hard"].read() == b"x"
    shutil.rmtree(folder)


@pytest.mark.parametrize("mode", [0o654, 0o645, 0o611])
def test_group_and_other_bits_of_a_source_file_do_not_matter(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "r"
    (folder / "share").mkdir(parents=True)
    (folder / "share" / "tool").write_text("x\n")
    (folder / "xarch.yaml").write_text("name: t\nplatforms: [amd64]\nfiles:\n  - src: share\n    dst: /opt\n")
    loaded = load(folder / "xarch.yaml")
    os.chmod(folder / "share" / "tool", mode)
    as_given = recipe_tree(loaded, get_platform("amd64")).get("opt/tool")
    os.chmod(folder / "share" / "tool", mode & ~0o077)
    stripped = recipe_tree(loaded, get_platform("amd64")).get("opt/tool")
    assert as_given is not None and stripped is not None
    assert as_given.mode == stripped.mode


@pytest.mark.slow
def test_verify_of_a_group_executable_source_file(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    (folder / "share").mkdir(parents=True)
    (folder / "share" / "tool").write_text("x\n")
    os.chmod(folder / "share" / "tool", 0o654)
    (folder / "xarch.yaml").write_text("name: t\nplatforms: [amd64]\nepoch: 1\nfiles:\n"
                                       "  - src: share/tool\n    dst: /tool\n")
    result = run_xarch("verify", "-f", str(folder / "xarch.yaml"), "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert result.returncode == 0, [v for v in report["variations"] if v["status"] != "same"]


def test_an_image_from_the_cache_has_the_bytes_of_a_fresh_build(tmp_path: Path, hello_binaries: Path) -> None:
    cache = tmp_path / "cache"
    outputs = {}
    for name, flags in (("fresh", ["--no-cache"]), ("fills", []), ("cached", [])):
        out = tmp_path / name
        result = run_ok("build", "-f", str(HELLO), "-v", *flags, "-o", f"oci:{out / 'layout'}",
                        "-o", f"oci-archive:{out / 'image.tar'}", cache=cache)
        outputs[name] = files_of(out)
        assert ("from the cache" in result.stderr) is (name == "cached"), result.stderr
    assert outputs["fresh"] == outputs["fills"] == outputs["cached"]
