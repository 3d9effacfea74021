"""A structure-aware recipe fuzzer: valid recipes, mutated, through the real loader and CLI.

Start from valid recipes (the shapes of examples/*/xarch.yaml and the README's), mutate them —
values of the wrong type, huge and negative numbers, unicode and control characters, NUL bytes,
YAML tags (!!python/object, !!binary, …), anchors and aliases (bounded billion laughs), deep
nesting, duplicate keys, bytes that are not UTF-8 — and hold, for every example:

- `xarch.recipe.load` either returns or raises an XarchError; nothing else escapes;
- `xarch build` (in this process, through `xarch.cli.run`, as `main` runs it) ends with a handled
  exit code; on failure stderr is one `xarch: error:` line, no output was written and the image
  cache holds exactly what it held before; on success the output is a whole OCI layout.

Only recipes without packages, stages or copies are built (those need a mirror or a sandbox).
The run is reproducible: hypothesis derandomized, no example database, a fixed example count.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz import EXAMPLES, FUZZ
from tests.support.inprocess import HANDLED, xarch_in_process
from xarch.errors import XarchError
from xarch.recipe import load

HELLO_LIKE: dict[str, Any] = {
    "name": "hello",
    "tag": "1.0",
    "platforms": ["amd64", "arm64"],
    "epoch": 1700000000,
    "config": {
        "entrypoint": ["/bin/app", "-c"],
        "cmd": ["cat /etc/motd"],
        "env": {"PATH": "/bin"},
        "user": "0:0",
        "workdir": "/",
        "exposed_ports": [8080],
        "volumes": ["/data"],
        "labels": {"org.opencontainers.image.title": "hello"},
        "stop_signal": "SIGTERM",
    },
    "annotations": {
        "index": {"org.opencontainers.image.title": "hello"},
        "manifest": {"org.opencontainers.image.title": "hello"},
    },
    "files": [
        {"src": "bin/{arch}/app", "dst": "/bin/app", "mode": "0755", "owner": "0:0"},
        {"src": "etc/motd", "dst": "/etc/motd", "mode": "0644", "owner": "0:0"},
        {"src": "data", "dst": "/srv/data", "owner": "1000:1000"},
    ],
    "directories": [
        {"path": "/tmp", "mode": "1777", "owner": "0:0"},
        {"path": "/var/log/app", "owner": "101:101"},
    ],
    "symlinks": [{"path": "/bin/sh", "target": "app", "owner": "0:0"}],
    "layers": [{"name": "base", "paths": ["/bin/**"]}, {"name": "app", "paths": ["**"]}],
    "compression": {"level": 6},
}
MINIMAL: dict[str, Any] = {
    "name": "m",
    "platforms": ["amd64"],
    "epoch": 0,
    "files": [{"src": "etc/motd", "dst": "/motd"}],
}
WITH_PACKAGES: dict[str, Any] = {  # the README's second recipe: loaded, never built here
    "name": "nginx",
    "tag": "1.22",
    "platforms": ["amd64", "arm64"],
    "epoch": 1700000000,
    "sources": {"debian": {"suites": ["bookworm"], "components": ["main"]}},
    "packages": ["nginx-light", "ca-certificates"],
    "accounts": {
        "groups": [{"name": "nginx", "gid": 101}],
        "users": [{"name": "nginx", "uid": 101, "gid": 101, "home": "/var/lib/nginx"}],
    },
    "stages": {
        "build": {
            "packages": ["gcc"],
            "cross": True,
            "strategy": "auto",
            "steps": [{"run": "make", "network": False}],
        },
        "web": {"dockerfile": "Dockerfile", "build_args": {"VERSION": "1"}},
    },
    "copy": [{"from": "build:/out/hello", "dst": "/usr/bin/hello", "mode": "0755"}],
    "files": [{"src": "etc/motd", "dst": "/etc/motd"}],
    "python": {"requirements": ["flask==3.1.*"], "interpreter": "/usr/bin/python3", "target": "/opt/venv",
               "version": "3.11", "glibc": "2.36", "index_url": "https://pypi.org/simple"},
}
BASES = [HELLO_LIKE, MINIMAL, WITH_PACKAGES]

# ---- values that do not belong -------------------------------------------------------------------

CONTROL = "".join(chr(c) for c in range(0x20) if chr(c) not in "\n") + "\x7f\x85\u2028\u2029"
texts = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(CONTROL), max_size=40)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, 2**64, 18446744073709551616, 10**400, 7, 0o755]),
    st.floats(allow_nan=True, allow_infinity=True),
)
paths = st.sampled_from(
    [
        "/",
        "//",
        "/../etc",
        "/a/../../b",
        "relative",
        "",
        "/a\x00b",
        "/" + "a" * 5000,
        "/dev/null",
        "/bin/app/",
        "/tmp/./x",
        "C:\\x",
        "/\udcff",
    ]
)
modes = st.sampled_from(["0755", "755", "0o755", "07777", "99999", "-1", "0x1ed", 493, "", "1777"])
owners = st.sampled_from(
    [
        "0:0",
        "18446744073709551616:0",
        "0:18446744073709551616",
        "2097152:0",
        "4294967295:0",
        "99999999999:1",
        "-1:0",
        "a:b",
        "1000",
        1000,
        -5,
        "1:2:3",
        "4294967296",
    ]
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, paths, modes, owners)
nasty = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.one_of(texts, st.integers()), inner, max_size=4)
    ),
    max_leaves=12,
)


def _all_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    result = [prefix]
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            result += _all_paths(value[key], (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            result += _all_paths(item, (*prefix, index))
    return result


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


# Values that still have the field's type, picked by the field's name: they pass the schema often
# and reach the build, where a value the checks did not foresee is most likely to break something.
signals = st.sampled_from(["SIGTERM", "SIGKILL", "SIGNOPE", "9", "0", "SIGRTMIN+3", "", "sigterm"])
platform_names = st.sampled_from(
    [
        "amd64",
        "arm64",
        "arm/v7",
        "s390x",
        "riscv64",
        "386",
        "linux/amd64",
        "mips",
        "",
        "AMD64",
        "amd64/",
        "arm",
    ]
)
globs = st.sampled_from(["**", "/**", "[", "*", "/bin/*", "[!a]", "**/**", "/\\", "{a,b}", ""])
sources = st.sampled_from(
    [
        "etc/motd",
        "data",
        "bin/{arch}/app",
        "{nope}",
        "{arch",
        "../etc/motd",
        "/etc/hostname",
        "missing",
        "",
        "data/",
        ".",
        "bin/{variant}/app",
        "bin/{platform}/app",
    ]
)
FIELD_VALUES: dict[str, Any] = {
    "owner": owners,
    "user": st.one_of(owners.filter(lambda o: isinstance(o, str)), texts),
    "mode": modes.filter(lambda m: isinstance(m, str)),
    "dst": paths,
    "path": paths,
    "workdir": paths,
    "target": st.one_of(paths, texts),
    "src": sources,
    "stop_signal": signals,
    "platforms": platform_names,
    "paths": globs,
    "exposed_ports": st.one_of(numbers, texts),
    "volumes": paths,
    "name": texts,
    "tag": texts,
}


def _mutate(document: Any, data: st.DataObject) -> Any:
    every = _all_paths(document)
    leaves = [p for p in every if p and not isinstance(_at(document, p), (dict, list))]
    # Mostly a leaf (a value a field can hold), else any node (a whole list or mapping, the root).
    pick_a_leaf: int = data.draw(st.integers(0, 3))
    pool = leaves if leaves and pick_a_leaf else every
    path = data.draw(st.sampled_from(pool))
    action = data.draw(
        st.sampled_from(["same type"] * 5 + ["replace", "delete", "unknown key", "wrap", "nest", "empty"])
    )
    if not path:
        return data.draw(nasty) if action == "replace" else document
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    field = next((part for part in reversed(path) if isinstance(part, str)), "")
    if action == "same type":  # still valid to the schema, often: reaches the build
        value = parent[last]
        if isinstance(value, bool):
            parent[last] = not value
        elif isinstance(value, int):
            parent[last] = data.draw(numbers.filter(lambda n: isinstance(n, int)))
        elif isinstance(value, str):
            parent[last] = data.draw(FIELD_VALUES.get(field, texts))
        elif isinstance(value, list) and value:
            value.append(copy.deepcopy(value[data.draw(st.integers(0, len(value) - 1))]))
    elif action == "replace":
        parent[last] = data.draw(nasty)
    elif action == "delete":
        del parent[last]
    elif action == "unknown key" and isinstance(parent[last], dict):
        parent[last][data.draw(texts)] = data.draw(nasty)
    elif action == "wrap":
        parent[last] = [parent[last]]
    elif action == "nest":
        value = parent[last]
        for _ in range(data.draw(st.integers(1, 60))):
            value = [value] if data.draw(st.booleans()) else {"x": value}
        parent[last] = value
    elif action == "empty":
        parent[last] = type(parent[last])() if isinstance(parent[last], (dict, list, str)) else None
    return document


# ---- text-level mutations: what a dict cannot say ------------------------------------------------

TAGS = [
    "!!python/object/apply:os.system ['touch /tmp/xarch-fuzz-pwned']",
    "!!python/object:object {}",
    "!!binary aGVsbG8=",
    "!!binary //79",
    "!!set {a, b}",
    "!!timestamp 2001-12-14",
    "!!float .nan",
    "!!int 0x10",
    "!!str",
    "!!map {}",
    "!custom x",
    "!<tag:yaml.org,2002:str> 5",
    "!!omap [a: 1]",
    "!!merge <<",
    "&anchor 1",
    "*undefined_alias",
]


def _laughs(width: int, depth: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _text_mutation(text: str, data: st.DataObject) -> bytes:
    kind = data.draw(
        st.sampled_from(
            ["none"] * 10
            + ["tag", "tag", "laughs", "alias", "duplicate", "insert", "bytes", "bom", "truncate", "deep"]
        )
    )
    lines = text.splitlines(keepends=True)
    at = data.draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "tag":
        line = lines[at]
        key, sep, _ = line.partition(": ")
        lines[at] = f"{key}{sep}{data.draw(st.sampled_from(TAGS))}\n" if sep else line
    elif kind == "laughs":
        width, depth = data.draw(st.integers(2, 10)), data.draw(st.integers(1, 9))
        return (
            _laughs(width, depth) + text.replace("epoch:", f"epoch: *l{depth - 1}\nold_epoch:", 1)
        ).encode("utf-8", "surrogateescape")
    elif kind == "alias":
        return ("base: &base {name: hello, platforms: [amd64]}\n<<: *base\n" + text).encode(
            "utf-8", "surrogateescape"
        )
    elif kind == "duplicate":
        lines.insert(at, lines[at])
    elif kind == "insert":
        pos = data.draw(st.integers(0, len(text)))
        text = (
            text[:pos]
            + data.draw(
                st.sampled_from(
                    [
                        "\x00",
                        "\t",
                        "\r",
                        "\x1b[31m",
                        "\ufeff",
                        "\udcff",
                        ":",
                        "- ",
                        "{",
                        "]",
                        "'",
                        '"',
                        "\\",
                        "%YAML 1.2\n",
                        "---\n",
                        "...\n",
                        "? ",
                    ]
                )
            )
            + text[pos:]
        )
        return text.encode("utf-8", "surrogateescape")
    elif kind == "bytes":
        pos = data.draw(st.integers(0, len(text)))
        raw = text.encode("utf-8", "surrogateescape")
        return (
            raw[:pos]
            + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
            + raw[pos:]
        )
    elif kind == "bom":
        return b"\xff\xfe" + text.encode("utf-16-le")
    elif kind == "truncate":
        return text.encode("utf-8", "surrogateescape")[: data.draw(st.integers(0, len(text)))]
    elif kind == "deep":  # bounded: PyYAML's scanner is quadratic in flow depth (5,000 is a regression test)
        depth = data.draw(st.integers(50, 400))
        lines.insert(at, "deep: " + "[" * depth + "1" + "]" * depth + "\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


@st.composite
def recipes(draw: st.DrawFn) -> bytes:
    data = draw(st.data())
    document = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(0, 3))):
        document = _mutate(document, data)
    style = data.draw(st.sampled_from(["block", "flow", "json"]))
    try:
        if style == "json":
            text = json.dumps(document, ensure_ascii=data.draw(st.booleans()))
        else:
            text = yaml.safe_dump(
                document, default_flow_style=style == "flow", allow_unicode=True, sort_keys=False
            )
    except (ValueError, UnicodeEncodeError):  # e.g. NaN in JSON mode is fine; a lone surrogate is not
        text = yaml.safe_dump(document, allow_unicode=False, sort_keys=False)
    return _text_mutation(text, data)


# ---- the property --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A recipe folder with the sources the bases name, and a private image cache."""
    root = tmp_path_factory.mktemp("fuzz-recipe")
    for arch in ("amd64", "arm64"):
        (root / "bin" / arch).mkdir(parents=True)
        (root / "bin" / arch / "app").write_bytes(b"#!/bin/sh\necho " + arch.encode() + b"\n")
        os.chmod(root / "bin" / arch / "app", 0o755)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("hello\n")
    (root / "data").mkdir()
    (root / "data" / "a.txt").write_text("a\n")
    yield root


def cache_files(cache: Path) -> dict[str, int]:
    return (
        {str(p.relative_to(cache)): p.stat().st_size for p in cache.rglob("*") if p.is_file()}
        if cache.exists()
        else {}
    )


STATS = {"examples": 0, "loaded": 0, "built": 0, "refused": 0}


def buildable(recipe: Any) -> bool:
    return not (recipe.packages is not None or recipe.stages or recipe.copy_ or recipe.sources.debian
                or recipe.python is not None)  # python: resolves against an index


@pytest.mark.timeout(600)
def test_mutated_recipes_load_or_fail_with_one_line_and_write_nothing(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XARCH_CACHE", str(cache))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    recipe_file, output = folder / "xarch.yaml", tmp_path / "out"
    started = time.monotonic()

    @FUZZ
    @given(recipes())
    def check(text: bytes) -> None:
        STATS["examples"] += 1
        recipe_file.write_bytes(text)
        shutil.rmtree(output, ignore_errors=True)
        try:
            loaded = load(recipe_file)
        except XarchError as error:
            assert "\n" not in str(error) and "\r" not in str(error), repr(str(error))
            loaded = None
        if loaded is not None:
            STATS["loaded"] += 1
            if not buildable(loaded.recipe):
                return  # valid, but a build would need a Debian mirror or a sandbox
        before = cache_files(cache)
        outcome = xarch_in_process("build", "-f", str(recipe_file), "-q", "-o", f"oci:{output}")
        assert outcome.code in HANDLED, outcome
        if outcome.code == 0:
            STATS["built"] += 1
            assert (output / "index.json").is_file() and (output / "oci-layout").is_file()
            assert not [p for p in cache.rglob(".tmp-*")], "a staging file was left in the cache"
            return
        STATS["refused"] += 1
        outcome.one_error_line(str(recipe_file))
        assert not output.exists(), f"failed build left {output}"
        assert cache_files(cache) == before, "a failed build changed the cache"

    check()
    elapsed = time.monotonic() - started
    print(f"\nrecipe fuzzer: {STATS} in {elapsed:.1f} s")
    assert STATS["examples"] >= EXAMPLES
    # The fuzzer is worth its time only if it reaches both sides: builds that work and errors.
    assert STATS["built"] > EXAMPLES // 50 and STATS["refused"] > EXAMPLES // 4, STATS


# ---- regression tests: one per class the fuzzer found ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        # PyYAML's composer recursed once per level: RecursionError, a traceback.
        (b"name: a\nx: " + b"[" * 5000 + b"1" + b"]" * 5000 + b"\n", None, "levels deep"),
        (b"name: a\nx:\n" + b"".join(b"  " * i + b"- \n" for i in range(3000)), None, "levels deep"),
        # The reader's error was two lines with no line number.
        (b"name: a\nplatforms: [amd64]\ntag: x\x00y\n", 3, "character U+0000 is not allowed"),
        (b"name: a\nplatforms: [amd64]\ntag: \x1b[31m\n", 3, "character U+001B is not allowed"),
        # A decoding error named no line.
        (b"name: a\nplatforms: [amd64]\ntag: x\xffy\n", 3, "not UTF-8: byte 0xff"),
        # Aliases expanding to ~4.7 million values took seconds (9 levels: minutes) before any check.
        (
            _laughs(9, 7).encode() + b"name: a\nplatforms: [amd64]\n",
            None,
            "holds more than 100000 values (an alias counts once per use)",
        ),
    ],
)
def test_recipe_text_errors_are_one_line_with_a_line_number(
    tmp_path: Path, text: bytes, line: int | None, says: str
) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_bytes(text)
    started = time.monotonic()
    outcome = xarch_in_process("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}")
    assert time.monotonic() - started < 10
    assert outcome.code == 2
    where = f"{recipe}:{line}:" if line else f"{recipe}: "
    outcome.one_error_line(where, says)
    assert not (tmp_path / "out").exists()


def test_aliases_within_the_bound_still_load(tmp_path: Path) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(
        "name: a\nplatforms: [amd64]\nannotations:\n  index: &labels {a: b}\n  manifest: *labels\n"
    )
    assert load(recipe).recipe.annotations.manifest == {"a": "b"}


@pytest.mark.parametrize(
    ("old", "new", "line", "says"),
    [
        # TreeError from the image tree was a traceback: now the recipe's error at that field.
        ("target: app", "target: ''", 9, "symlinks[0].target: "),
        # YAML's "\udcff" escape made a lone surrogate: UnicodeEncodeError hashing the recipe.
        ("dst: /motd", 'dst: "/mo\\udcfftd"', 6, "files[0].dst: not valid Unicode text"),
        # An epoch past ustar's 11 octal digits broke the layer writer (AssertionError).
        ("epoch: 0", "epoch: 8589934592", 3, "epoch: Input should be less than or equal to 8589934591"),
    ],
)
def test_values_the_image_cannot_hold_are_the_recipes_error(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, line: int, says: str
) -> None:
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    base = "name: m\nplatforms: [amd64]\nepoch: 0\nfiles:\n  - src: etc/motd\n    dst: /motd\n"
    base += "symlinks:\n  - path: /bin/sh\n    target: app\n"
    recipe = folder / "regression.yaml"
    recipe.write_text(base.replace(old, new))
    outcome = xarch_in_process("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}")
    assert outcome.code == 2, outcome
    outcome.one_error_line(f"{recipe}:{line}: {says}")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "cache" / "images").exists()


def test_a_source_date_epoch_past_2242_is_refused(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(8**11))
    recipe = folder / "regression.yaml"
    recipe.write_text("name: m\nplatforms: [amd64]\nfiles: [{src: etc/motd, dst: /motd}]\n")
    outcome = xarch_in_process("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}")
    assert outcome.code == 2
    outcome.one_error_line("SOURCE_DATE_EPOCH: 8589934592 is after 8589934591")
