"""A corrupt-input fuzzer for OCI layouts, oci-archives and docker-archives.

One small real image is built once (two platforms, two layers, through the in-process CLI) and
written as a layout, an oci-archive and a docker-archive. Each example takes a copy of one of
them and damages it: truncates or flips bytes of a file, drops blobs, edits the JSON of
index.json, the index, a manifest or a config (wrong types, missing keys, wrong mediaType, wrong
digests, huge and negative sizes, deep nesting) — then, half the time, re-hashes the chain above
the edit so the damage reaches the parsers behind the digest checks. Every reader then runs on it:

- `xarch inspect X` and `xarch diff GOOD X` (in this process, through `xarch.cli.run`);
- the readers behind `push` (layout_folder + LayoutSource), `load` (read_layout_image) and
  `verify --against` (published_side), called as those commands call them.

Each either works or fails with an XarchError whose text is one line (the CLI: one
`xarch: error:` line and a handled exit code); no other exception, never a hang (pytest-timeout).
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz import EXAMPLES, FUZZ
from tests.support.inprocess import HANDLED, xarch_in_process
from xarch.docker.load import read_layout_image
from xarch.errors import XarchError
from xarch.oci.digest import canonical_json, sha256_digest
from xarch.registry.imageref import parse_image_ref
from xarch.registry.layout_source import NotInPlace, layout_folder
from xarch.registry.mediatypes import UnsupportedInDocker, platform_name
from xarch.registry.push import _config_platform, _prepare
from xarch.registry.push_source import LayoutSource
from xarch.verify.published import published_side

RECIPE = """\
name: fuzz
tag: "1"
platforms: [amd64, arm64]
epoch: 1700000000
config: {entrypoint: [/bin/app], env: {PATH: /bin}, labels: {a: b}}
files:
  - {src: "bin/{arch}/app", dst: /bin/app, mode: "0755"}
  - {src: etc, dst: /etc/fuzz}
directories: [{path: /tmp, mode: "1777"}]
symlinks: [{path: /bin/sh, target: app}]
layers: [{name: base, paths: ["/bin/**"]}, {name: app, paths: ["**"]}]
"""


@dataclass(frozen=True)
class Good:
    layout: Path
    oci_archive: Path
    docker_archive: Path


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Good:
    root = tmp_path_factory.mktemp("fuzz-inputs")
    for arch in ("amd64", "arm64"):
        (root / "src" / "bin" / arch).mkdir(parents=True)
        (root / "src" / "bin" / arch / "app").write_bytes(
            os.urandom(0) + f"#!/bin/sh\necho {arch}\n".encode() * 50
        )
    (root / "src" / "etc").mkdir()
    (root / "src" / "etc" / "motd").write_text("hello\n" * 100)
    (root / "src" / "xarch.yaml").write_text(RECIPE)
    made = Good(root / "layout", root / "image.oci.tar", root / "image.docker.tar")
    before = os.environ.get("XARCH_CACHE")
    os.environ["XARCH_CACHE"] = str(root / "cache")  # restored below; the build must not use ~/.cache
    try:
        outcome = xarch_in_process(
            "build",
            "-f",
            str(root / "src" / "xarch.yaml"),
            "-q",
            "-o",
            f"oci:{made.layout}",
            "-o",
            f"oci-archive:{made.oci_archive}",
            "-o",
            f"docker-archive:{made.docker_archive}",
            "--docker-platform",
            "amd64",
        )
    finally:
        if before is None:
            del os.environ["XARCH_CACHE"]
        else:
            os.environ["XARCH_CACHE"] = before
    assert outcome.code == 0, outcome
    return made


# ---- damage --------------------------------------------------------------------------------------

huge = st.sampled_from(
    [2**63, 2**64, 10**30, -1, -(2**63), 0, 1, 1.5, float("inf"), "12", "0x10", True, None]
)
wrong_digests = st.sampled_from(
    [
        "sha256:" + "0" * 64,
        "sha256:zz",
        "md5:abc",
        "sha256:",
        "",
        "sha256:" + "a" * 63,
        "sha256:../../../etc/passwd",
        "sha512:" + "1" * 128,
        7,
        None,
        ["x"],
        "sha256:" + "A" * 64,
    ]
)
media_types = st.sampled_from(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "text/plain",
        "",
        5,
        None,
    ]
)
junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=20),
        huge,
        wrong_digests,
        media_types,
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    result = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            result += _json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            result += _json_paths(item, (*prefix, index))
    return result


def _edit_json(document: Any, data: st.DataObject) -> Any:
    """One edit at a random place of DOCUMENT: a value of the wrong kind, a key dropped, etc."""
    path = data.draw(st.sampled_from(_json_paths(document)))
    key = path[-1] if path else None
    action = data.draw(st.sampled_from(["junk", "size", "digest", "mediaType", "drop", "nest", "empty list"]))
    replacement: Any = {
        "junk": junk,
        "size": huge,
        "digest": wrong_digests,
        "mediaType": media_types,
    }.get(action)
    if not path:
        if action == "nest":
            return [[[[[[[[document]]]]]]]] if data.draw(st.booleans()) else "[" * 100_000
        return data.draw(junk) if action in ("junk", "drop") else document
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if replacement is not None:
        parent[key] = data.draw(replacement)
    elif action == "drop":
        del parent[key]
    elif action == "nest":
        parent[key] = json.loads("[" * 300 + "1" + "]" * 300)
    elif action == "empty list":
        parent[key] = []
    return document


@dataclass
class LayoutFiles:
    """A layout folder as mutable JSON and blobs, written back (re-hashed or not) by `write`."""

    root: Path

    def json(self, relative: str) -> Any:
        return json.loads((self.root / relative).read_bytes())

    def blob_names(self) -> list[str]:
        return sorted(p.name for p in (self.root / "blobs" / "sha256").iterdir())

    def json_blobs(self) -> list[str]:
        folder = self.root / "blobs" / "sha256"
        return [name for name in self.blob_names() if _parses((folder / name).read_bytes())]


def _parses(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def _rechain(root: Path, old: str, new_bytes: bytes) -> None:
    """Store NEW_BYTES as a blob and point every reference to blob OLD (digest and size) at it,
    repeating upwards so the layout's digests are consistent again above the edit."""
    new = sha256_digest(new_bytes)
    (root / "blobs" / "sha256" / new[7:]).write_bytes(new_bytes)
    pending = [(old, new, len(new_bytes))]
    seen = set()
    while pending:
        old_digest, new_digest, size = pending.pop()
        if old_digest in seen:
            continue
        seen.add(old_digest)
        holders = [root / "index.json"] if (root / "index.json").is_file() else []
        for holder in [*holders, *(root / "blobs" / "sha256").iterdir()]:
            data = holder.read_bytes()
            if old_digest.encode() not in data or holder.name == new_digest[7:]:
                continue
            try:
                document = json.loads(data)
            except ValueError:
                continue
            replaced = _replace_descriptor(document, old_digest, new_digest, size)
            updated = canonical_json(replaced)
            if holder.name == "index.json":
                holder.write_bytes(updated)
            else:
                (root / "blobs" / "sha256" / sha256_digest(updated)[7:]).write_bytes(updated)
                pending.append(("sha256:" + holder.name, sha256_digest(updated), len(updated)))


def _replace_descriptor(value: Any, old: str, new: str, size: int) -> Any:
    if isinstance(value, dict):
        if value.get("digest") == old:
            return {**value, "digest": new, "size": size}
        return {k: _replace_descriptor(v, old, new, size) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_descriptor(v, old, new, size) for v in value]
    return value


def _tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return out.getvalue()


def _odd_member(data: st.DataObject) -> tuple[tarfile.TarInfo, bytes]:
    name = data.draw(
        st.sampled_from(
            [
                "a",
                "../../etc/passwd",
                "/abs",
                "dir/",
                "x" * 300,
                "caf\u00e9",
                "sp ace",
                ".wh..wh..opq",
                ".wh.gone",
                "a\nb",
                "./.",
                "",
            ]
        )
    )
    info = tarfile.TarInfo(name)
    info.type = data.draw(
        st.sampled_from(
            [
                tarfile.REGTYPE,
                tarfile.DIRTYPE,
                tarfile.SYMTYPE,
                tarfile.LNKTYPE,
                tarfile.CHRTYPE,
                tarfile.FIFOTYPE,
                b"Z",
            ]
        )
    )
    info.linkname = data.draw(st.sampled_from(["", "a", "../../x", "/etc", "a" * 200]))
    info.mode = data.draw(st.sampled_from([0o644, 0o7777, 0]))
    info.uid = data.draw(st.sampled_from([0, 65534, 2**21 - 1, 2**40]))
    info.mtime = data.draw(st.sampled_from([0, 1700000000, 2**40, -1]))
    content = data.draw(st.binary(max_size=64)) if info.type == tarfile.REGTYPE else b""
    info.size = len(content)
    if data.draw(st.booleans()):
        info.pax_headers = {"SCHILY.xattr.user.x": "v", "comment": "\x00"}
    return info, content


def _odd_layer(data: st.DataObject) -> bytes:
    """Layer bytes that are not what a layer should be, or a layer with odd entries."""
    kind = data.draw(st.sampled_from(["random", "gzip random", "odd tar", "truncated gzip", "zstd", "empty"]))
    if kind == "random":
        return data.draw(st.binary(max_size=512))
    if kind == "gzip random":
        return gzip.compress(data.draw(st.binary(max_size=2048)), mtime=0)
    if kind == "odd tar":
        members = [_odd_member(data) for _ in range(data.draw(st.integers(1, 4)))]
        raw = _tar_of(members)
        return gzip.compress(raw, mtime=0) if data.draw(st.booleans()) else raw
    if kind == "truncated gzip":
        whole = gzip.compress(_tar_of([_odd_member(data)]), mtime=0)
        return whole[: data.draw(st.integers(0, len(whole) - 1))]
    if kind == "zstd":
        return b"\x28\xb5\x2f\xfd" + data.draw(st.binary(max_size=64))
    return b""


def damage_layout(root: Path, data: st.DataObject) -> str:
    files = LayoutFiles(root)
    action = data.draw(
        st.sampled_from(
            ["json", "json", "json", "layer", "layer", "flip", "truncate", "drop blob", "drop file", "extra"]
        )
    )
    candidates = [name for name in ("index.json", "oci-layout") if (root / name).is_file()]
    candidates += [f"blobs/sha256/{n}" for n in files.blob_names()]
    json_files = [f"blobs/sha256/{n}" for n in files.json_blobs()]
    if (root / "index.json").is_file() and _parses((root / "index.json").read_bytes()):
        json_files.append("index.json")
    if not json_files and action == "json":
        action = "extra"
    layers = [n for n in files.blob_names() if n not in {j.rsplit("/", 1)[-1] for j in json_files}]
    if action == "layer" and layers:
        # A layer replaced and every digest above it re-hashed: only the diff_id can tell.
        old = data.draw(st.sampled_from(layers))
        _rechain(root, f"sha256:{old}", _odd_layer(data))
        return f"layer {old}"
    if action == "json":
        target = data.draw(st.sampled_from(json_files))
        document = _edit_json(copy.deepcopy(files.json(target)), data)
        encoded = document.encode() if isinstance(document, str) else canonical_json(document)
        if target != "index.json" and data.draw(st.booleans()):
            _rechain(root, "sha256:" + target.rsplit("/", 1)[1], encoded)
            return f"json {target} re-hashed"
        (root / target).write_bytes(encoded)
        return f"json {target}"
    target = data.draw(st.sampled_from(candidates))
    path = root / target
    if action == "flip" and path.stat().st_size:
        raw = bytearray(path.read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(raw))
    elif action == "truncate":
        whole = path.read_bytes()
        path.write_bytes(whole[: data.draw(st.integers(0, max(0, len(whole) - 1)))])
    elif action == "drop blob" or action == "drop file":
        path.unlink()
    elif action == "extra":
        (root / "blobs" / "sha256" / ("f" * 64)).write_bytes(b"stray")
    return f"{action} {target}"


def tar_folder(root: Path, target: Path, order: list[str] | None = None) -> None:
    with tarfile.open(target, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=str(path.relative_to(root)))


def damage_bytes(path: Path, data: st.DataObject) -> str:
    raw = bytearray(path.read_bytes())
    action = data.draw(st.sampled_from(["truncate", "flip", "zero block", "append"]))
    if action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif action == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    elif action == "zero block":
        start = data.draw(st.integers(0, len(raw) // 512)) * 512
        raw[start : start + 512] = b"\0" * len(raw[start : start + 512])
    else:
        raw += data.draw(st.binary(min_size=1, max_size=1024))
    path.write_bytes(bytes(raw))
    return f"bytes {action}"


def damage_docker_archive(good: Path, target: Path, data: st.DataObject) -> str:
    """Edit a member of a docker-archive (manifest.json, the config, a layer), written as a new tar."""
    with tarfile.open(good) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    name = data.draw(st.sampled_from(sorted(members)))
    content = members[name]
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if document is not None and data.draw(st.booleans()):
        edited = _edit_json(document, data)
        members[name] = edited.encode() if isinstance(edited, str) else canonical_json(edited)
        what = f"docker json {name}"
    elif data.draw(st.booleans()):
        del members[name]
        what = f"docker drop {name}"
    else:
        raw = bytearray(content)
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 0x20
        members[name] = bytes(raw[: data.draw(st.integers(0, len(raw)))])
        what = f"docker flip/truncate {name}"
    with tarfile.open(target, "w") as archive:
        for member_name, member_data in members.items():
            info = tarfile.TarInfo(member_name)
            info.size = len(member_data)
            archive.addfile(info, io.BytesIO(member_data))
    return what


# ---- the property --------------------------------------------------------------------------------

STATS: dict[str, int] = {"examples": 0, "readers run": 0, "worked": 0, "refused": 0}


def check_reader(name: str, call: Callable[[], object]) -> None:
    STATS["readers run"] += 1
    try:
        call()
    except XarchError as error:
        text = str(error)
        assert text and "\n" not in text and "\r" not in text, f"{name}: not one line: {text!r}"
        STATS["refused"] += 1
        return
    STATS["worked"] += 1


def push_reader(path: Path) -> None:
    """What `xarch push` does with a layout the registry has nothing of: read it as push_layout does
    (an uncompressed oci-archive in place, another one unpacked first), prepare the bytes to send
    in both formats (docker: converted media types), and verify every blob (each would be sent)."""
    if path.is_file():
        try:
            in_place = LayoutSource(path)
        except NotInPlace:
            pass
        else:
            send_all(in_place)
            return
    with layout_folder(path) as folder:
        send_all(LayoutSource(folder, hash_all=folder != path))


def send_all(source: LayoutSource) -> None:
    """What a push reads of SOURCE before and while it sends everything (see push_reader)."""
    for fmt in ("oci", "docker"):
        try:
            manifests, _ = _prepare(source.image, fmt)
        except UnsupportedInDocker:
            continue  # push turns this into a RegistryError naming the layout
        for i, manifest in enumerate(manifests):
            platform_name(manifest.platform or _config_platform(source, i))
    for blob in source.image.unique_blobs():
        source.verify(blob)
        span = source.blob(str(blob["digest"]))
        if not isinstance(span, Path):
            span.read_bytes()  # what an upload reads of a blob in place


@pytest.mark.timeout(900)
def test_corrupt_layouts_and_archives_work_or_fail_with_one_line(good: Good, tmp_path: Path) -> None:
    started = time.monotonic()
    kinds: dict[str, int] = {}

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        STATS["examples"] += 1
        work = tmp_path / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        kind = data.draw(
            st.sampled_from(
                [
                    "layout",
                    "layout",
                    "oci-archive",
                    "oci-archive bytes",
                    "docker-archive",
                    "docker-archive bytes",
                ]
            )
        )
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind.startswith("layout") or kind == "oci-archive":
            target = work / "layout"
            shutil.copytree(good.layout, target)
            for _ in range(data.draw(st.integers(1, 3))):
                damage_layout(target, data)
            if kind == "oci-archive":
                tar_folder(target, work / "image.tar")
                shutil.rmtree(target)
                target = work / "image.tar"
        elif kind == "oci-archive bytes":
            target = work / "image.tar"
            shutil.copyfile(good.oci_archive, target)
            damage_bytes(target, data)
        elif kind == "docker-archive":
            target = work / "docker.tar"
            damage_docker_archive(good.docker_archive, target, data)
        else:
            target = work / "docker.tar"
            shutil.copyfile(good.docker_archive, target)
            damage_bytes(target, data)

        for command, allowed in (
            (["inspect", str(target)], {0, 2}),
            (
                ["diff", str(good.layout if "docker" not in kind else good.docker_archive), str(target)],
                {0, 1, 2},
            ),
        ):
            STATS["readers run"] += 1
            outcome = xarch_in_process(*command)
            assert outcome.code in allowed and outcome.code in HANDLED, (command, outcome)
            if outcome.code == 2:
                outcome.one_error_line()
                STATS["refused"] += 1
            else:
                STATS["worked"] += 1
        if "docker" not in kind:
            check_reader("push", lambda: push_reader(target))
            check_reader("load", lambda: read_layout_image(target, "amd64"))
            check_reader(
                "verify --against", lambda: published_side(parse_image_ref(str(target), role="--against"))
            )

    check()
    elapsed = time.monotonic() - started
    print(f"\ninput fuzzer: {STATS}, kinds {kinds}, in {elapsed:.1f} s")
    assert STATS["examples"] >= EXAMPLES
    assert STATS["refused"] > EXAMPLES // 2 and STATS["worked"] > EXAMPLES // 20, STATS


# ---- regression tests: one per class the fuzzer found ---------------------------------------------


def _copy_with_config(good: Good, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the good layout whose first config is edited and every digest above it re-hashed."""
    layout = tmp_path / "edited"
    shutil.copytree(good.layout, layout)
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    index = json.loads((layout / "blobs/sha256" / top[7:]).read_bytes())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    config_digest = manifest["config"]["digest"]
    config = json.loads((layout / "blobs/sha256" / config_digest[7:]).read_bytes())
    edit(config)
    _rechain(layout, config_digest, canonical_json(config))
    return layout


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        # Worded by the config's schema (xarch.oci.schema), which the read model checks every config against.
        (lambda c: c.update(history="not a list"), "image config (history: Input should be a valid list)"),
        (lambda c: c.update(history=["a string"]), "image config (history[0]: should be a JSON object)"),
        (lambda c: c.update(rootfs="layers"), "image config (rootfs: should be a JSON object)"),
        (lambda c: c["rootfs"].update(diff_ids=[1, 2]), "image config (rootfs.diff_ids[0]: Input should be"),
    ],
)
def test_diff_of_a_config_with_fields_of_the_wrong_type_is_one_line(
    good: Good, tmp_path: Path, edit: Callable[[dict[str, Any]], None], says: str
) -> None:
    # Was AttributeError: 'str' object has no attribute 'get' (a traceback).
    layout = _copy_with_config(good, tmp_path, edit)
    outcome = xarch_in_process("diff", str(good.layout), str(layout))
    assert outcome.code == 2
    outcome.one_error_line(str(layout), says)


def test_diff_of_a_config_whose_runtime_config_is_a_list_reports_it(good: Good, tmp_path: Path) -> None:
    # Was AttributeError: 'list' object has no attribute 'get' in compare_runtime.
    layout = _copy_with_config(good, tmp_path, lambda c: c.update(config=["Env"]))
    outcome = xarch_in_process("diff", str(good.layout), str(layout))
    assert outcome.code == 1, outcome
    assert "config" in outcome.stdout


def test_load_refuses_an_image_whose_config_runs_another_platform_than_its_index_entry(
    good: Good, tmp_path: Path
) -> None:
    # The index said linux/amd64, the config s390x: `load --platform amd64` loaded it, and docker
    # then reported s390x.
    layout = _copy_with_config(good, tmp_path, lambda c: c.update(architecture="s390x"))
    with pytest.raises(XarchError, match="the index says architecture 'amd64', its config says 's390x'"):
        read_layout_image(layout, "amd64")
    read_layout_image(good.layout, "amd64")  # the same image unaltered loads


def test_verify_against_a_layout_whose_config_is_not_an_object_is_one_line(
    good: Good, tmp_path: Path
) -> None:
    # A lone-manifest layout takes its platform from the config: a JSON array there was a TypeError.
    layout = tmp_path / "edited"
    shutil.copytree(good.layout, layout)
    top_json = json.loads((layout / "index.json").read_bytes())
    index = json.loads((layout / "blobs/sha256" / top_json["manifests"][0]["digest"][7:]).read_bytes())
    top_json["manifests"] = [index["manifests"][0]]  # index.json names one manifest, no index
    (layout / "index.json").write_bytes(canonical_json(top_json))
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    _rechain(layout, manifest["config"]["digest"], b'["not", "a", "config"]')
    with pytest.raises(XarchError, match="a JSON array where a JSON object was expected"):
        published_side(parse_image_ref(str(layout)))


@pytest.mark.parametrize("content", [b"", b"not a tar archive\n" * 40])
def test_push_of_a_file_that_is_not_an_archive_is_one_line(tmp_path: Path, content: bytes) -> None:
    # tarfile's "file could not be opened successfully" names every method it tried, a line each.
    archive = tmp_path / "image.tar"
    archive.write_bytes(content)
    outcome = xarch_in_process("push", str(archive), "127.0.0.1:9/never/pushed:1", "-q")
    assert outcome.code == 2
    outcome.one_error_line(str(archive), "not a tar archive")


def test_every_xarch_error_prints_as_one_line() -> None:
    text = "first\nsecond\r\nthird\u2028fourth\n"
    assert str(XarchError(text)) == "first / second / third / fourth"
    assert str(XarchError("one line")) == "one line"
