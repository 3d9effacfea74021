"""Loading a recipe (xarch/recipe.py, xarch/yamlpos.py): defaults, values, epoch order, error lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.hello import HELLO
from tests.support.needs import need_tool
from xarch.errors import RecipeError
from xarch.recipe import load, resolve_epoch
from xarch.yamlpos import load as load_positions

FULL = """\
name: team/app
tag: "2.1"
platforms: [linux/arm64, amd64, arm/v7]
epoch: 1234
config:
  entrypoint: ["/app"]
  cmd: ["--serve"]
  env: {A: "1", B: two}
  user: "1000:1000"
  workdir: /srv
  exposed_ports: [8080, 53/udp]
  volumes: [/data]
  labels: {k: v}
  stop_signal: SIGTERM
annotations:
  index: {org.opencontainers.image.source: https://example.org}
  manifest: {m: "1"}
files:
  - src: bin/{arch}/app
    dst: /app
    mode: "4755"
    owner: "1000:100"
  - src: etc
    dst: /etc/app
    owner: 7
    platforms: [amd64]
directories:
  - path: /data
    mode: "0700"
symlinks:
  - path: /usr/bin/app
    target: /app
layers:
  - name: base
    paths: ["/etc/**"]
  - name: app
    paths: ["**"]
compression:
  level: 9
"""


def write(tmp_path: Path, text: str) -> Path:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(text)
    return recipe


def test_every_field_is_read(tmp_path: Path) -> None:
    recipe = load(write(tmp_path, FULL)).recipe
    assert recipe.name == "team/app" and recipe.tag == "2.1"
    assert recipe.platforms == ["arm64", "amd64", "arm/v7"]  # canonical names, the recipe's order
    assert recipe.config.exposed_ports == ["8080/tcp", "53/udp"]
    assert recipe.config.env == {"A": "1", "B": "two"}
    assert recipe.files[0].mode == 0o4755 and recipe.files[0].owner == (1000, 100)
    assert recipe.files[1].mode is None and recipe.files[1].owner == (7, 7)
    assert recipe.files[1].platforms == ["amd64"]
    assert recipe.directories[0].mode == 0o700
    assert [layer.name for layer in recipe.layers] == ["base", "app"]
    assert recipe.compression.level == 9
    assert recipe.annotations.index == {"org.opencontainers.image.source": "https://example.org"}


def test_defaults(tmp_path: Path) -> None:
    recipe = load(write(tmp_path, "name: a\nplatforms: [amd64]\n")).recipe
    assert recipe.tag == "latest" and recipe.epoch is None
    assert recipe.files == [] and recipe.layers == []
    assert recipe.compression.level == 6
    assert recipe.compression.algorithm == "gzip"


def test_zstd_takes_levels_up_to_19(tmp_path: Path) -> None:
    text = "name: a\nplatforms: [amd64]\ncompression: {algorithm: zstd, level: 19}\n"
    compression = load(write(tmp_path, text)).recipe.compression
    assert (compression.algorithm, compression.level) == ("zstd", 19)


def test_a_folder_means_its_xarch_yaml() -> None:
    loaded = load(HELLO)
    assert loaded.path == HELLO / "xarch.yaml"
    assert loaded.recipe.name == "hello"


@pytest.mark.parametrize(("text", "line", "field"), [
    ("name: a\nplatforms: [amd64]\nfiles:\n  - src: x\n    dst: /x\n    mode: 644\n", 6, "files[0].mode"),
    ("name: a\nplatforms: [amd64]\nfiles:\n  - src: x\n    dst: /x\n  - src: y\n    dst: y\n", 7,
     "files[1].dst"),
    ("name: a\nplatforms: [amd64]\nconfig:\n  exposed_ports: [http]\n", 4, "config.exposed_ports"),
    ("name: a\nplatforms: []\n", 2, "platforms"),
    ("name: a\nplatforms: [amd64]\ncompression:\n  level: 13\n", 4, "compression.level"),
    ("name: a\nplatforms: [amd64]\ncompression:\n  algorithm: zstd\n  level: 20\n", 5, "compression.level"),
    ("name: a\nplatforms: [amd64]\ncompression:\n  algorithm: brotli\n", 4, "compression.algorithm"),
    ("name: a\nplatforms: [amd64]\nlayers:\n  - paths: ['**']\n", 4, "layers[0].name"),
    ("name: a\nplatforms: [amd64]\nconfig:\n  env: {A: {b: c}}\n", 4, "config.env.A"),
])
def test_error_names_file_line_and_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    recipe = write(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load(recipe)
    message = str(caught.value)
    assert message.startswith(f"{recipe}:{line}: {field}: "), message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "field", "says"), [
    ("name: a\nplatforms: [amd64]\nconfig:\n", "config", "should be a mapping of fields"),
    ("name: a\nplatforms: [amd64]\nconfig: 5\n", "config", "should be a mapping of fields, not 5"),
    ("name: a\nplatforms: [amd64]\nstages:\n  a: [1]\n", "stages.a",
     "should be a mapping of fields, not [1]"),
])
def test_a_section_that_is_not_a_mapping_is_worded_without_class_names(tmp_path: Path, text: str, field: str,
                                                                        says: str) -> None:
    # Pydantic's own words were "Input should be a valid dictionary or instance of ImageConfigSpec".
    with pytest.raises(RecipeError) as caught:
        load(write(tmp_path, text))
    assert str(caught.value).endswith(f" {field}: {says}"), str(caught.value)


def test_yaml_positions_of_nested_fields(tmp_path: Path) -> None:
    positions = load_positions(write(tmp_path, FULL))
    assert positions.line_of(("files", 1, "owner")) == 25
    assert positions.line_of(("config", "labels", "k")) == 13
    assert positions.line_of(("files", 9)) == 18  # the nearest existing parent
    assert positions.line_of(()) == 1


def test_epoch_order_env_then_recipe_then_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = write(tmp_path, "name: a\nplatforms: [amd64]\nepoch: 1234\n")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "99")
    assert resolve_epoch(load(recipe)) == (99, "SOURCE_DATE_EPOCH")
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert resolve_epoch(load(recipe))[0] == 1234
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(RecipeError, match="SOURCE_DATE_EPOCH"):
        resolve_epoch(load(recipe))
    monkeypatch.delenv("SOURCE_DATE_EPOCH")

    git = need_tool("git")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "xarch.yaml").write_text("name: a\nplatforms: [amd64]\n")
    env = {"GIT_AUTHOR_DATE": "@1500000000 +0000", "GIT_COMMITTER_DATE": "@1500000000 +0000",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "xarch.yaml"], ["commit", "-q", "-m", "recipe"]):
        subprocess.run([git, *args], cwd=repo, env=env, check=True)
    epoch, source = resolve_epoch(load(repo))
    assert (epoch, source) == (1500000000, "last git commit of the recipe's folder")


def test_no_epoch_anywhere_is_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert resolve_epoch(load(write(tmp_path, "name: a\nplatforms: [amd64]\n")))[0] == 0
