"""Unit tests of the build pipeline's parts (xarch/build/, run/rootfs, oci/pathglob, sign/actions,
verify/against), on a files-only recipe: no daemon, no namespace, no QEMU. The whole pipeline with
stages and packages is tested in tests/integration (test_build, test_e2e_*)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xarch import platforms
from xarch.build.contents import recipe_tree
from xarch.build.layering import split_layers
from xarch.build.outputs import OutputSpec
from xarch.build.packages import lock_inputs, selections
from xarch.build.pipeline import BuildInputs, PlatformBuild, build
from xarch.build.python_stages import has_stage_python
from xarch.build.stages import parse_strategy_records, strategy_record
from xarch.errors import XarchError
from xarch.oci.layout import write_layout
from xarch.oci.pathglob import matches
from xarch.oci.store import Store
from xarch.oci.tree import Entry, Tree
from xarch.progress import Reporter
from xarch.recipe import LayerSpec, LoadedRecipe, load
from xarch.registry.imageref import parse_image_ref
from xarch.registry.reference import parse_reference
from xarch.run.rootfs import harvest, materialize
from xarch.sign.actions import pinned_text
from xarch.verify.against import published_strategies

RECIPE = """\
name: parts
platforms: [amd64, arm64]
epoch: 1700000000
files:
  - {src: app.txt, dst: /srv/app.txt}
  - {src: conf, dst: /etc/parts}
layers:
  - {name: config, paths: ["etc/**"]}
  - {name: app, paths: ["**"]}
"""


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedRecipe:
    folder = tmp_path / "recipe"
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "a.conf").write_text("a=1\n")
    (folder / "app.txt").write_text("hello\n")
    (folder / "xarch.yaml").write_text(RECIPE)
    return load(folder / "xarch.yaml")


def test_globs_span_folders_only_with_two_stars() -> None:
    assert matches("usr/lib/**", "usr/lib/x/y.so") and matches("usr/lib/**", "usr/lib")
    assert matches("usr/*/x", "usr/lib/x") and not matches("usr/*/x", "usr/lib/deep/x")
    assert not matches("etc/*.conf", "etc/sub/a.conf") and matches("etc/?.conf", "etc/a.conf")


def test_the_recipe_tree_and_its_layers(loaded: LoadedRecipe) -> None:
    tree = recipe_tree(loaded, platforms.get("amd64"))
    assert tree.get("srv/app.txt") is not None and tree.get("etc/parts/a.conf") is not None
    layers = dict(split_layers(tree, list(loaded.recipe.layers)))
    assert {entry.path for entry in layers["config"]} >= {"etc/parts/a.conf"}
    assert "srv/app.txt" in {entry.path for entry in layers["app"]}
    assert "srv/app.txt" not in {entry.path for entry in layers["config"]}
    # every layer carries the parents of its entries, so it unpacks on its own
    assert {"etc", "etc/parts"} <= {entry.path for entry in layers["config"]}
    default = split_layers(tree, [LayerSpec(name="all", paths=["**"])])
    assert [name for name, _ in default] == ["all"]


def test_a_files_only_recipe_has_no_package_sets(loaded: LoadedRecipe) -> None:
    assert selections(loaded) == {} and not has_stage_python(loaded)
    sources, wanted, names, cross = lock_inputs(loaded)
    assert wanted == {} and cross == {} and [p.name for p in names] == ["amd64", "arm64"]


def test_output_specs_parse_and_refuse() -> None:
    spec = OutputSpec.parse("oci-archive:out/image.tar")
    assert spec.kind == "oci-archive" and spec.path == Path("out/image.tar")
    for bad in ("out", "tar:out", "oci:"):
        with pytest.raises(XarchError, match="oci:DIR"):
            OutputSpec.parse(bad)


def test_strategy_records_round_trip() -> None:
    history: list[dict[str, object]] = [
        {"created_by": strategy_record("build", "cross", "amd64"), "empty_layer": True},
        {"created_by": strategy_record("gen", "emulate", None), "empty_layer": True},
        {"created_by": "something else"}]
    assert parse_strategy_records(history) == {"build": "cross on amd64", "gen": "emulate"}


def test_a_platform_build_reads_its_inputs(loaded: LoadedRecipe, tmp_path: Path) -> None:
    inputs = BuildInputs(loaded, (platforms.get("arm64"),), 7, store=Store(tmp_path / "store"),
                         recorded={"arm64": {"build": "emulate"}})
    one = PlatformBuild(inputs, platforms.get("arm64"), tmp_path / "work", Reporter(quiet=True))
    assert (one.loaded, one.epoch, one.lock, one.store) == (loaded, 7, None, inputs.store)
    assert one.recorded == {"build": "emulate"}
    assert PlatformBuild(inputs, platforms.get("amd64"), tmp_path, Reporter(quiet=True)).recorded == {}


def test_build_then_read_back_the_recorded_strategies(loaded: LoadedRecipe, tmp_path: Path) -> None:
    both = tuple(platforms.get(name) for name in ("amd64", "arm64"))
    artifact = build(BuildInputs(loaded, both, 1700000000, store=Store(tmp_path / "store"), use_cache=False),
                     Reporter(quiet=True))
    assert [image.platform["architecture"] for image in artifact.images] == ["amd64", "arm64"]
    write_layout(artifact, tmp_path / "layout")
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"].startswith("sha256:")
    # no stage ran steps: nothing recorded, for either platform
    recorded = published_strategies(parse_image_ref(f"oci:{tmp_path / 'layout'}"))
    assert recorded == {"amd64": {}, "arm64": {}}


def test_a_tree_materialized_and_harvested_back(tmp_path: Path) -> None:
    tree = Tree()
    tree.add(Entry("out", "dir", 0o755))
    tree.add(Entry("out/a.txt", "file", 0o644, data=b"a\n"))
    tree.add(Entry("out/link", "symlink", 0o777, linkname="a.txt"))
    root = tmp_path / "root"
    root.mkdir()
    materialize(tree, root)
    assert (root / "out" / "a.txt").read_bytes() == b"a\n" and (root / "out" / "link").is_symlink()
    entries = {entry.path: entry for entry in harvest(root, "/out", "/srv", "copy[0]")}
    assert entries["srv/a.txt"].read() == b"a\n" and entries["srv/link"].linkname == "a.txt"
    assert all(entry.uid == 0 and entry.gid == 0 for entry in entries.values())


def test_a_signed_reference_is_named_by_its_digest() -> None:
    ref = parse_reference("127.0.0.1:5000/team/app@sha256:" + "a" * 64)
    assert pinned_text(ref) == "127.0.0.1:5000/team/app@sha256:" + "a" * 64
