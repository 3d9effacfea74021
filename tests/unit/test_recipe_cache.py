"""Validated recipes kept by their bytes (xarch/recipecache.py), and locks noted as checked
(xarch/sources/debian/lock.py): the same values as a validation gives, never a wrong one."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from xarch import recipecache
from xarch.errors import RecipeError
from xarch.recipe import LoadedRecipe, Recipe, load
from xarch.sources.debian import lock as lock_module
from xarch.sources.debian.errors import LockError
from xarch.sources.debian.lock import Lock

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(REPO.glob("examples/*/xarch.yaml"))

# Every kind of value a recipe holds: tuples (owners), paths (a relative keyring), aliases
# (copy/from), None, nested dicts of models, Literal strings, a stage's python.
EVERY_KIND = """\
name: team/app
tag: "2.1"
platforms: [linux/arm64, amd64]
epoch: 1234
sources:
  debian:
    suites: [bookworm]
    keyring: keys/archive.gpg
    fingerprints: ["aaaa bbbb cccc dddd eeee ffff 0000 1111 2222 3333"]
packages:
  install: [busybox]
  platforms: {arm64: {add: [zlib1g]}}
config:
  entrypoint: ["/app"]
  env: {A: "1"}
  user: "1000:1000"
  exposed_ports: [8080, 53/udp]
  labels: {k: v}
annotations: {index: {a: b}}
files:
  - {src: app, dst: /app, mode: "4755", owner: "1000:100"}
directories: [{path: /data, mode: "0700"}]
symlinks: [{path: /usr/bin/app, target: /app}]
layers: [{name: base, paths: ["/etc/**"]}, {name: app, paths: ["**"]}]
compression: {algorithm: zstd, level: 15}
accounts:
  users: [{name: app, uid: 1000}]
  groups: [{name: app, gid: 1000, members: [app]}]
stages:
  build:
    packages: [gcc]
    steps:
      - run: make
        env: {X: "1"}
    inputs: ["src/**"]
  py:
    python: {requirements: [flask==3.0.0], version: "3.11"}
copy:
  - {from: "build:/out/app", dst: /usr/bin/app2, mode: "0755"}
foreign_code: ["/opt/firmware/**"]
trace:
  run: ["/app", "--check"]
  keep: ["/etc/**"]
args: {VERSION: "1"}
"""


def shape(value: Any) -> Any:
    """VALUE with the type of every part and the fields set of every model: what == alone misses."""
    if isinstance(value, BaseModel):
        fields = {name: shape(getattr(value, name)) for name in type(value).model_fields}
        return (type(value), frozenset(value.model_fields_set), fields)
    if isinstance(value, (list, tuple)):
        return (type(value), [shape(item) for item in value])
    if isinstance(value, dict):
        return (dict, [(shape(k), shape(v)) for k, v in value.items()])
    return (type(value), value)


def recipe_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "app").write_text("x")
    path = tmp_path / "xarch.yaml"
    path.write_text(text)
    return path


def built(path: Path) -> LoadedRecipe:
    """PATH loaded as a build loads it: kept in the cache once the build has built (keep)."""
    loaded = load(path)
    loaded.keep()
    return loaded


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "parsed").glob("recipe-*.json"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("path", [*EXAMPLES, None], ids=[p.parent.name for p in EXAMPLES] + ["every-kind"])
def test_a_kept_recipe_is_what_validation_gives(tmp_path: Path, cache: Path, path: Path | None) -> None:
    """The second load of the same bytes comes from the cache, without validation, and is equal
    to the first in every value, type and fields set; plain() dumps both as pydantic does."""
    if path is None:
        path = recipe_file(tmp_path, EVERY_KIND)
    first = built(path)
    (entry,) = entries(cache)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    kept = recipecache.get(entry, Recipe)
    assert kept is not None and kept is not first.recipe
    assert shape(kept) == shape(Recipe.model_validate(load(path).positions.data))
    second = load(path)
    assert shape(second.recipe) == shape(first.recipe)
    assert second.as_json() == first.recipe.model_dump(mode="json", by_alias=True)
    for selection in [second.recipe.packages] + [s.packages for s in second.recipe.stages.values()]:
        if selection is not None:
            assert selection.identity() == selection.model_dump(mode="json", exclude={"maintainer_scripts"})


def test_a_kept_recipe_is_not_validated_again(tmp_path: Path, cache: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = recipe_file(tmp_path, EVERY_KIND)
    first = built(path)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("validated again")

    monkeypatch.setattr(Recipe, "model_validate", refuse)
    assert load(path).recipe == first.recipe
    path.write_text(EVERY_KIND + "# one more line\n")  # other bytes: validated
    with pytest.raises(AssertionError, match="validated again"):
        load(path)


def test_a_relative_keyring_is_the_folder_s_of_each_recipe(tmp_path: Path, cache: Path) -> None:
    """Two folders, one recipe's bytes: the cached value is from before the keyring was made
    absolute, so each load resolves it against its own folder."""
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        recipe_file(folder, EVERY_KIND)
    assert built(one / "xarch.yaml").recipe.sources.debian[0].keyring == one / "keys/archive.gpg"
    assert built(two / "xarch.yaml").recipe.sources.debian[0].keyring == two / "keys/archive.gpg"
    assert len(entries(cache)) == 1


def test_a_recipe_only_read_is_not_kept(tmp_path: Path, cache: Path) -> None:
    """`load` alone writes nothing: a command that fails before its build (a strategy this host
    cannot run, a verify refused) or only reads the recipe leaves the cache as it was."""
    loaded = load(recipe_file(tmp_path, EVERY_KIND))
    assert not cache.exists()
    loaded.keep()
    assert len(entries(cache)) == 1
    loaded.keep()  # once
    assert len(entries(cache)) == 1


def test_a_recipe_that_fails_validation_is_never_kept(tmp_path: Path, cache: Path) -> None:
    path = recipe_file(tmp_path, "name: a\nplatforms: [amd64]\nepoch: -1\n")
    with pytest.raises(RecipeError, match="epoch"):
        load(path)
    with pytest.raises(RecipeError, match="epoch"):
        load(path)
    assert entries(cache) == []


DAMAGED = {
    "not json": b"{",
    "cut short": None,  # the entry's first half
    "another format": b'{"format": "xarch-recipe-cache/0", "recipe": null}',
    "a class outside the recipe": (b'{"format": "xarch-recipe-cache/1", "recipe": '
                                   b'{"model": {"class": "os.system", "fields": {}, "set": []}}}'),
    "a float": b'{"format": "xarch-recipe-cache/1", "recipe": 1.5}',
    "a missing field": "drop-field",
    "a list in the fields set": "set-of-lists",
    "an extra key in a value": "extra-key",
    "a key given twice": b'{"format": "xarch-recipe-cache/1", "recipe": {"dict": [["a", 1], ["a", 2]]}}',
    "not a recipe at the top": b'{"format": "xarch-recipe-cache/1", "recipe": "a"}',
    "deeply nested": b'{"format": "xarch-recipe-cache/1", "recipe": ' + b"[" * 99_999 + b"]" * 99_999 + b"}",
}


@pytest.mark.parametrize("damage", DAMAGED, ids=list(DAMAGED))
def test_a_damaged_entry_is_validated_again_and_replaced(tmp_path: Path, cache: Path, damage: str) -> None:
    path = recipe_file(tmp_path, EVERY_KIND)
    first = built(path)
    (entry,) = entries(cache)
    good = entry.read_bytes()
    data = json.loads(good)
    value = DAMAGED[damage]
    if value is None:
        value = good[: len(good) // 2]
    elif value == "drop-field":
        del data["recipe"]["model"]["fields"]["tag"]
        value = json.dumps(data).encode()
    elif value == "set-of-lists":
        data["recipe"]["model"]["set"] = [["name"]]
        value = json.dumps(data).encode()
    elif value == "extra-key":
        data["recipe"]["model"]["fields"]["tag"] = {"tuple": [], "path": "x"}
        value = json.dumps(data).encode()
    assert isinstance(value, bytes)
    entry.write_bytes(value)
    assert shape(built(path).recipe) == shape(first.recipe)
    assert entry.read_bytes() == good  # validated, and kept again


def test_a_symlink_or_fifo_in_place_of_an_entry_is_never_read(tmp_path: Path, cache: Path) -> None:
    path = recipe_file(tmp_path, EVERY_KIND)
    first = built(path)
    (entry,) = entries(cache)
    target = tmp_path / "elsewhere.json"
    target.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(target)
    assert recipecache.get(entry, Recipe) is None
    entry.unlink()
    os.mkfifo(entry)
    assert recipecache.get(entry, Recipe) is None  # returns: never waits on a FIFO
    assert shape(load(path).recipe) == shape(first.recipe)


def test_a_cache_that_cannot_be_written_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XARCH_CACHE", str(blocker))
    path = recipe_file(tmp_path, EVERY_KIND)
    assert load(path).recipe == load(path).recipe


def test_values_the_cache_does_not_know_are_not_kept(tmp_path: Path) -> None:
    allowed = recipecache.models(Recipe)
    assert {"xarch.recipe.Recipe", "xarch.recipe.StageSpec", "xarch.sources.debian.config.DebianSource",
            "xarch.sources.python.config.PythonSpec",
            "xarch.sources.debian.config.PlatformPackages"} <= set(allowed)
    for value in (1.5, {1, 2}, b"x", object()):
        with pytest.raises(recipecache.Unkept):
            recipecache.encode(value, allowed)
        with pytest.raises(recipecache.Unkept):
            recipecache.plain(value)
    # nothing to keep: the load that validated it writes no entry (LoadedRecipe.keep)
    assert recipecache.entry_bytes(Recipe.model_construct(name="a", platforms=["amd64"], tag=1.5)) is None


LOCK = """\
version: 1
inputs: {digest: "sha256:00"}
releases: {stable: {date: "Sat, 01 Jun 2024 00:00:00 UTC", inrelease_sha256: "00", signed_by: "AA"}}
packages:
  image:
    amd64:
      - {name: a, version: "1", architecture: amd64, filename: pool/a_1_amd64.deb, size: 3,
         sha256: "%s", suite: stable}
""" % ("0" * 64)


def test_a_lock_checked_once_is_not_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, parsed = tmp_path / "xarch.lock", tmp_path / "cache" / "parsed"
    path.write_text(LOCK)
    first = Lock.load(path, parsed)
    (note,) = parsed.glob("lock-checked-*")

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("checked again")

    monkeypatch.setattr(lock_module._LockFile, "model_validate", refuse)
    assert Lock.load(path, parsed).dumps() == first.dumps()
    monkeypatch.undo()
    path.write_text(LOCK.replace("size: 3", 'size: "3"'))  # other bytes: checked, and refused
    with pytest.raises(LockError, match="malformed lock"):
        Lock.load(path, parsed)
    assert list(parsed.glob("lock-checked-*")) == [note]


def test_a_lock_note_speaks_for_the_data_used_not_the_file_s_name(tmp_path: Path) -> None:
    """A build reads the lock through the cache's parse of it (parsed/<sha256 of the text>.json):
    a parse changed there is other data, with no note, so it is checked (and refused) again."""
    path, parsed = tmp_path / "xarch.lock", tmp_path / "cache" / "parsed"
    path.write_text(LOCK)
    assert lock_module.has_packages(path, parsed)
    Lock.load(path, parsed)
    (entry,) = (p for p in parsed.glob("*.json"))
    data = json.loads(entry.read_bytes())
    data["packages"]["image"]["amd64"][0].update(size="ten", bogus=1)
    entry.write_text(json.dumps(data))
    lock_module._PARSED.clear()  # a new process: the parse comes from the cache
    assert lock_module.has_packages(path, parsed)
    with pytest.raises(LockError, match="malformed lock"):
        Lock.load(path, parsed)



def test_any_change_to_an_entry_gives_a_recipe_or_none_never_an_error(tmp_path: Path, cache: Path) -> None:
    """The class of the damaged entries above: 600 random changes to a good entry's JSON (a
    value anywhere replaced by another of any JSON type). `get` either rebuilds a Recipe or
    says None (the recipe is validated again); nothing else escapes it."""
    import random

    built(recipe_file(tmp_path, EVERY_KIND))
    (entry,) = entries(cache)
    good = json.loads(entry.read_bytes())
    rng = random.Random(14)
    kinds: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x", [], {}, [["a"]], {"a": 1}, {"tuple": 3},
                        {"model": {"class": "xarch.recipe.Recipe", "fields": [], "set": {}}}, [[1, 2]]]

    def places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [path]
        children: Any = []
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        for key, child in children:
            found += places(child, (*path, key))
        return found

    spots = places(good)
    for _ in range(600):
        data = json.loads(json.dumps(good))
        spot = rng.choice(spots)
        if not spot:
            continue
        parent = data
        for key in spot[:-1]:
            parent = parent[key]
        parent[spot[-1]] = rng.choice(kinds)
        entry.write_text(json.dumps(data))
        kept = recipecache.get(entry, Recipe)
        assert kept is None or type(kept) is Recipe


def test_a_lock_note_is_never_shared_by_data_json_writes_alike(tmp_path: Path) -> None:
    """`"true":` (text) and `true:` (a boolean key) write the same JSON: the good lock's note must
    not let the bad one through unchecked (it is refused, as without any note)."""
    parsed = tmp_path / "cache" / "parsed"
    good, bad = tmp_path / "good" / "xarch.lock", tmp_path / "bad" / "xarch.lock"
    for path, key in ((good, '"true"'), (bad, "true")):
        path.parent.mkdir()
        path.write_text(LOCK.replace("  image:", f"  {key}:"))
    Lock.load(good, parsed)
    assert list(parsed.glob("lock-checked-*"))
    with pytest.raises(LockError, match="malformed lock"):
        Lock.load(bad, parsed)
