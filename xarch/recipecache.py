"""Validated recipes, kept in the cache by the bytes of their file.

Validating a recipe costs little; building pydantic's validators for the recipe's models costs
~0.1 s of every run that reads one (a one-line edit of a source file rebuilds in well under a
second, so that is a large part of it). The models are declared with `defer_build`: a validator is
built only when something is validated. A recipe whose bytes, xarch and interpreter are those of
a recipe validated before is not validated again: the models are rebuilt from what that
validation gave, kept as typed JSON in `<cache>/parsed/recipe-<key>.json`.

pydantic rebuilds a model without validating only one level deep (`model_construct` keeps
nested values as given); nothing maintained rebuilds a tree of models, lists, tuples, dicts and
paths from data already validated, so this module encodes one by hand. Each value is kept with
its Python type, and only the models a Recipe can hold are ever rebuilt: a value of any other
type is not kept (the recipe is validated at each run, as before), and an entry that is not
exactly such a tree is deleted and the recipe validated again.

An entry is trusted as the rest of the cache is (the user's own folder): it is not a check of the
recipe, it is the recipe's check, done once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import typing
from pathlib import Path, PosixPath
from typing import Any

from pydantic import BaseModel

FORMAT = "xarch-recipe-cache/1"
MAX_ENTRY_BYTES = 16 << 20


class Unkept(Exception):
    """A value this module does not keep (its type), or an entry that is not one it wrote."""


@functools.cache
def models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """{module.qualname: class} of ROOT and every model its fields can hold, at any depth
    (through list[X], dict[K, V], X | None and Annotated[X, …])."""
    found: dict[str, type[BaseModel]] = {}

    def visit(kind: Any) -> None:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            name = f"{kind.__module__}.{kind.__qualname__}"
            if name in found:
                return
            found[name] = kind
            for field in kind.model_fields.values():
                visit(field.annotation)
            return
        for argument in typing.get_args(kind):
            visit(argument)

    visit(root)
    return found


def encode(value: Any, allowed: dict[str, type[BaseModel]]) -> Any:
    """VALUE as JSON data that keeps its types: None, bool, int and str as they are, a list as a
    list, and one-key objects for the rest: {"tuple": […]}, {"dict": [[key, value], …]},
    {"path": "…"}, {"model": {"class": …, "fields": {…}, "set": […]}}. Raises Unkept for a
    value of any other type, or a model not in ALLOWED or holding private or extra values."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is list:
        return [encode(item, allowed) for item in value]
    if kind is tuple:
        return {"tuple": [encode(item, allowed) for item in value]}
    if kind is dict:
        return {"dict": [[encode(k, allowed), encode(v, allowed)] for k, v in value.items()]}
    if kind is PosixPath:
        return {"path": str(value)}
    name = f"{kind.__module__}.{kind.__qualname__}"
    if allowed.get(name) is not kind:
        raise Unkept(f"a value of type {name}")
    if value.__pydantic_private__ or value.__pydantic_extra__:
        raise Unkept(f"{name} holds private or extra values")
    fields = {field: encode(getattr(value, field), allowed) for field in kind.model_fields}
    return {"model": {"class": name, "fields": fields, "set": sorted(value.model_fields_set)}}


def decode(data: Any, allowed: dict[str, type[BaseModel]]) -> Any:
    """What `encode` made DATA from. Raises Unkept for anything encode does not write."""
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is list:
        return [decode(item, allowed) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise Unkept("not a value this cache writes")
    (kind, body), = data.items()
    if kind == "tuple" and type(body) is list:
        return tuple(decode(item, allowed) for item in body)
    if kind == "dict" and type(body) is list:
        pairs = [decode_pair(pair, allowed) for pair in body]
        result = dict(pairs)
        if len(result) != len(pairs):
            raise Unkept("a key given twice")
        return result
    if kind == "path" and type(body) is str:
        return Path(body)
    if kind == "model" and type(body) is dict and set(body) == {"class", "fields", "set"}:
        model = allowed.get(body["class"]) if type(body["class"]) is str else None
        fields, given = body["fields"], body["set"]
        if model is None or type(fields) is not dict or set(fields) != set(model.model_fields):
            raise Unkept("not a model of the recipe, or not all of its fields")
        if type(given) is not list or any(type(n) is not str for n in given) or not set(given) <= set(fields):
            raise Unkept("a field set that is not the model's")
        values = {name: decode(value, allowed) for name, value in fields.items()}
        return model.model_construct(_fields_set=set(given), **values)
    raise Unkept("not a value this cache writes")


def decode_pair(pair: Any, allowed: dict[str, type[BaseModel]]) -> tuple[Any, Any]:
    """One [key, value] of an encoded dict, decoded; Unkept unless it is a pair of hashable key
    and value."""
    if type(pair) is not list or len(pair) != 2:
        raise Unkept("a dict entry that is not a [key, value] pair")
    key = decode(pair[0], allowed)
    if type(key) not in (str, int, bool, type(None)):
        raise Unkept("a dict key that is not a scalar")
    return key, decode(pair[1], allowed)


def plain(value: Any, by_alias: bool = True) -> Any:
    """VALUE (a model of the recipe, or what one holds) as JSON data, as pydantic's
    `model_dump(mode="json", by_alias=BY_ALIAS)` gives it for the types `encode` keeps: a model
    as {field name, or its alias: value}, tuples as lists, paths as text. It needs no serializer,
    and pydantic builds one per model at its first dump (~40 ms for a recipe's).
    Raises Unkept for a value of another type."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind in (list, tuple):
        return [plain(item, by_alias) for item in value]
    if kind is dict:
        return {plain(k, by_alias): plain(v, by_alias) for k, v in value.items()}
    if kind is PosixPath:
        return str(value)
    if isinstance(value, BaseModel) and not value.__pydantic_extra__:
        return {(field.alias or name) if by_alias else name: plain(getattr(value, name), by_alias)
                for name, field in kind.model_fields.items()}
    raise Unkept(f"a value of type {kind.__module__}.{kind.__qualname__}")


def cache_key(recipe_sha256: str) -> str:
    """The key (sha256 hex) of a recipe file whose bytes have RECIPE_SHA256, validated by this
    xarch (its code and platform data: size and mtime of each file) with this interpreter and its
    libraries (pydantic among them: each library folder's mtime)."""
    from xarch.records import code_fingerprint, record_json

    material = {"format": FORMAT, "recipe": recipe_sha256, "code": code_fingerprint()}
    return hashlib.sha256(record_json(material)).hexdigest()


def entry_path(cache_root: Path, key: str) -> Path:
    """Where the entry of KEY lives below the cache folder CACHE_ROOT."""
    return cache_root / "parsed" / f"recipe-{key}.json"


def get(path: Path, root: type[BaseModel]) -> Any | None:
    """The ROOT model kept at PATH, or None when there is none, or it is damaged or not one this
    module wrote (then it is deleted: the recipe is validated again and kept again)."""
    from xarch.smallfile import SmallFileError, read_small

    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None  # a symlink or a FIFO put there: never followed, never waited on
        raw = read_small(path, MAX_ENTRY_BYTES)
    except (OSError, SmallFileError):
        return None
    try:
        value = json.loads(raw)
        if type(value) is not dict or value.get("format") != FORMAT:
            raise Unkept("another format")
        recipe = decode(value.get("recipe"), models(root))
        if type(recipe) is not root:
            raise Unkept("not a recipe")
        return recipe
    except (ValueError, RecursionError, Unkept):
        try:
            path.unlink()
        except OSError:
            pass
        return None


def entry_bytes(recipe: BaseModel) -> bytes | None:
    """The entry that keeps RECIPE (a validated model, as validation gave it), or None when one of
    its values is not kept (Unkept) or `plain` would dump it otherwise than pydantic does."""
    try:
        if plain(recipe) != recipe.model_dump(mode="json", by_alias=True):
            raise Unkept("a value plain() gives otherwise than pydantic")  # a type it does not know
        return json.dumps({"format": FORMAT, "recipe": encode(recipe, models(type(recipe)))},
                          ensure_ascii=True, separators=(",", ":")).encode("ascii")
    except (Unkept, RecursionError):
        return None


def write(path: Path, data: bytes) -> None:
    """Write entry DATA (entry_bytes) at PATH, atomically, 0600; nothing when the cache cannot be
    written."""
    from xarch.oci.atomic import atomic_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, mode=0o600) as handle:
            handle.write(data)
    except OSError:
        pass
