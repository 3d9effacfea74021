"""Build records, part by part: the hand-written reading of `xarch build`'s command line agrees
with click's; the audit-hook recorder sees reads, listings, writes and programs as they happen;
a record that is malformed or hostile is refused. The whole path, with real builds, is
tests/integration/test_build_record.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.replay_tables import assert_every_option_is_placed
from xarch import records as record
from xarch.build.imagerecord import image_from_record, image_record, store_image
from xarch.cli.build import build_command
from xarch.cli.replay import NOT_REPLAYED, REPLAYED, parse
from xarch.oci.image import Image
from xarch.oci.layer import Layer
from xarch.oci.store import Store
from xarch.records import BuildRecord, Recorder, RecordError, RecordStore, Witness, listing_digest


def test_every_build_option_is_placed() -> None:
    """An option added to build_command must be declared replayed (with its arity) or not."""
    assert_every_option_is_placed(build_command, REPLAYED, NOT_REPLAYED)


@pytest.mark.parametrize("argv", [
    ["inspect", "x"], ["build", "--push", "r/x"], ["build", "-v"], ["build", "--no-cache"],
    ["build", "-o", "docker-archive:x.tar"], ["build", "-o", "tar:x"], ["build", "-qv"], ["build", "-ox"],
    ["build", "--json=1"], ["build", "-f"], ["build", "--", "-f"], ["build", "extra"], ["build", "--load"],
    ["build", "--sbom"], ["build", "--file"], ["build", "--help"], ["build", "--secret", "id=a,src=b"],
])
def test_not_replayable(argv: list[str]) -> None:
    assert parse(argv) is None


def test_parse_keeps_all_but_output_paths() -> None:
    request = parse(["build", "--platform=arm64", "-f", "r.yaml", "-o", "oci:a", "--output=oci-archive:b.tar",
                     "--label", "-o", "-q", "--json"])
    assert request is not None
    # `--label -o`: "-o" is the label's value (as click reads it), not an output
    assert request.key_argv == ["build", "--platform", "arm64", "-f", "r.yaml", "-o", "oci", "-o",
                                "oci-archive", "--label", "-o", "-q", "--json"]
    assert request.outputs == ["oci:a", "oci-archive:b.tar"]
    assert request.quiet and request.as_json


def test_click_reads_the_same_outputs() -> None:
    """Where parse says a token is an output, click says so too (the record is made only then)."""
    argv = ["build", "--label", "-o", "--platform", "-o", "-o", "oci:x", "-t", "--json"]
    request = parse(argv)
    assert request is not None
    context = build_command.make_context("build", argv[1:], resilient_parsing=True)
    assert list(context.params["outputs"]) == request.outputs == ["oci:x"]
    assert context.params["labels"] == ("-o",) and context.params["platform_list"] == "-o"


Start = Callable[[], Recorder]


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """Start recording (after the test made its inputs), with the racy window off: files made by
    the test are not "just changed" (tests/integration covers the window itself)."""
    monkeypatch.setattr(record, "_RACY_NS", -10**12)
    started: list[Recorder] = []

    def begin() -> Recorder:
        started.append(Recorder.start(tmp_path / "cache"))
        return started[-1]

    yield begin
    for recorder in started:
        recorder.stop()


def test_recorder_sees_reads_listings_and_creations(tmp_path: Path, start: Start) -> None:
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "a.txt"
    source.write_text("a")
    listed = tmp_path / "listed"
    listed.mkdir()
    (tmp_path / "cache" / "sha256").mkdir(parents=True)
    (tmp_path / "cache" / "sha256" / "c").write_text("c")
    recorder = start()
    (tmp_path / "in").mkdir(exist_ok=True)  # an existing folder: not made by the build
    source.read_text()
    os.listdir(listed)
    made = tmp_path / "made"
    made.mkdir()
    (made / "b.txt").write_text("b")
    (made / "b.txt").read_text()  # the build's own file: not an input
    (tmp_path / "cache" / "sha256" / "c").read_text()  # the cache's own folders: not an input
    (tmp_path / "missing").exists()
    witness = recorder.witness([])
    assert list(witness.files) == [str(source)]
    assert witness.files[str(source)][1] == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    assert set(witness.folders) == {str(tmp_path / "in"), str(listed)}


def test_read_then_written_is_not_recorded(tmp_path: Path, start: Start) -> None:
    lock = tmp_path / "xarch.lock"
    lock.write_text("old")
    recorder = start()
    lock.read_text()
    lock.write_text("new")
    with pytest.raises(RecordError, match="read and written"):
        recorder.witness([])


def test_a_program_blinds_the_recorder(tmp_path: Path, start: Start) -> None:
    recorder = start()
    subprocess.run(["true"], check=True)
    with pytest.raises(RecordError, match="subprocess"):
        recorder.witness([])


def test_reading_more_than_the_limit_records_nothing_and_hashes_no_more(
        tmp_path: Path, start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "MAX_HASHED_BYTES", 10)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"12345")
    big.write_bytes(b"1234567890")
    recorder = start()
    small.read_bytes()
    big.read_bytes()
    assert str(big) not in recorder.first and record.Recorder._current is None  # stopped, not hashed
    with pytest.raises(RecordError, match="read more than"):
        recorder.witness([])


def test_deferred_content_addressed_files_are_hashed_once(tmp_path: Path, start: Start) -> None:
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    data = b"layer"
    blob = blobs / hashlib.sha256(data).hexdigest()
    blob.write_bytes(data)
    recorder = start()
    recorder.defer_hashing([str(blobs) + "/"])
    blob.read_bytes()
    assert str(blob) in recorder.opened and str(blob) not in recorder.first
    assert recorder.witness([]).files[str(blob)][1] == blob.name
    recorder = start()
    recorder.defer_hashing([str(blobs) + "/"])
    blob.read_bytes()
    assert recorder.witness([], leave_out=[str(blob)]).files == {}


def test_changed_during_the_build(tmp_path: Path, start: Start) -> None:
    source = tmp_path / "a.txt"
    source.write_text("one")
    recorder = start()
    source.read_text()
    with open(os.open(source, os.O_WRONLY | os.O_APPEND), "a", closefd=True) as handle:  # seen as a write...
        handle.write(", two")
    recorder.written.clear()  # ...which this test forgets: only the stat can tell
    with pytest.raises(RecordError, match="changed while the command ran"):
        recorder.witness([])


def test_just_changed_is_not_recorded(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("one")
    started = Recorder.start(tmp_path / "cache")
    try:
        source.read_text()
        with pytest.raises(RecordError, match="just before the command began"):
            started.witness([])
    finally:
        started.stop()


def test_an_output_that_holds_an_input_is_not_recorded(tmp_path: Path, start: Start) -> None:
    """Writing the output replaces what the build read (`-o oci-archive:data.tar` of a recipe
    copying data.tar): such a build is not recorded, and no record replays for such an output."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.json").write_text("{}")
    recorder = start()
    (out / "index.json").read_text()
    with pytest.raises(RecordError, match="holds what the build read"):
        recorder.witness([out])
    witness = Witness(files={str(tmp_path / "data.tar"): []})
    assert witness.overlaps([tmp_path / "data.tar"]) and not witness.overlaps([tmp_path / "other.tar"])


def test_code_and_the_import_system_are_not_inputs(tmp_path: Path, start: Start) -> None:
    """What the interpreter runs (io.open_code) and the folders it searches for modules are its
    own, in the key; a file under XARCH_CACHE outside xarch's own folders is an input."""
    package = tmp_path / "lib"
    package.mkdir()
    (package / "recordtestmodule.py").write_text("VALUE = 1\n")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "conf.txt").write_text("v1")
    recorder = start()
    sys.path.insert(0, str(package))
    try:
        import recordtestmodule  # noqa: F401
    finally:
        sys.path.remove(str(package))
    (tmp_path / "cache" / "conf.txt").read_text()
    witness = recorder.witness([])
    assert list(witness.files) == [str(tmp_path / "cache" / "conf.txt")]
    assert str(package) not in witness.folders


def test_a_file_unlike_its_first_read_is_not_recorded(tmp_path: Path, start: Start) -> None:
    """A write through a shared memory mapping can leave a file's times as they were: the bytes
    hashed when the build first opened it must be the bytes at the end."""
    source = tmp_path / "a.txt"
    source.write_text("one")
    recorder = start()
    source.read_text()
    assert recorder.first[str(source)] == hashlib.sha256(b"one").hexdigest()
    recorder.first[str(source)] = hashlib.sha256(b"two").hexdigest()  # as if the bytes changed under it
    with pytest.raises(RecordError, match="not what the command first read"):
        recorder.witness([])


def test_an_output_in_a_folder_the_build_walked_is_not_recorded(tmp_path: Path, start: Start) -> None:
    """never_source leaves outputs out of a source folder, so what a build takes depends on them."""
    (tmp_path / "site").mkdir()
    recorder = start()
    os.listdir(tmp_path / "site")
    with pytest.raises(RecordError, match="in a folder the build walked"):
        recorder.witness([tmp_path / "site" / "out"])
    assert Witness(walked=[str(tmp_path / "site")]).overlaps([tmp_path / "site" / "x" / "y"])
    assert not Witness(walked=[str(tmp_path / "site")]).overlaps([tmp_path / "site2"])


def test_pseudo_files_blind_the_recorder(tmp_path: Path, start: Start) -> None:
    """What /proc, /sys or /dev hold is no file a record can check again (a recipe from
    /dev/stdin, a project in /dev/shm); /dev/null is nothing."""
    recorder = start()
    Path("/dev/null").read_bytes()
    assert not recorder.blind
    Path("/proc/self/status").read_bytes()
    with pytest.raises(RecordError, match="/proc/self/status"):
        recorder.witness([])


def test_paths_resolved_through_a_symlink_are_checked_again(tmp_path: Path, start: Start) -> None:
    """Path.resolve follows links without an audit event: its answers are witnessed (also on 3.10,
    whose pathlib bound os.path.realpath early)."""
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text("same")
    (tmp_path / "current").symlink_to("v1")
    recorder = start()
    source = (tmp_path / "current" / "a.txt").resolve()
    source.read_text()
    witness = recorder.witness([])
    assert witness.resolved[str(tmp_path / "current" / "a.txt")] == str(tmp_path / "v1" / "a.txt")
    witness.check()
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("v2")  # the same bytes, another file: another build
    with pytest.raises(RecordError, match="now leads to another path"):
        witness.check()


def test_hard_links_and_capabilities_are_witnessed(tmp_path: Path) -> None:
    """Both change an image (a hardlink entry, security.capability) without changing bytes or modes."""
    a, c = tmp_path / "a", tmp_path / "c"
    a.write_text("x")
    c.write_text("x")
    before = record.file_witness(str(c))
    c.unlink()
    os.link(a, c)
    assert record.file_witness(str(c)) != before
    linked = record.file_witness(str(a))
    try:
        os.setxattr(a, "user.xarch-test", b"1")
    except OSError:
        return  # a file system without user xattrs: the capability test is tests/integration's
    assert record.file_witness(str(a)) != linked


def test_names_that_are_not_utf8_make_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that is not UTF-8 (environment, command line) is kept as its escape, never an error."""
    monkeypatch.setenv("XARCH_TEST_VALUE", os.fsdecode(b"v\xff"))
    key = record.record_key(["build", "-f", os.fsdecode(b"r\xe9.yaml")])
    assert len(key) == 64
    monkeypatch.setenv("XARCH_TEST_VALUE", os.fsdecode(b"v\xfe"))
    assert record.record_key(["build", "-f", os.fsdecode(b"r\xe9.yaml")]) != key


def test_a_record_that_is_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    records = RecordStore(tmp_path, BuildRecord.from_json)
    (tmp_path / "records").mkdir()
    os.mkfifo(tmp_path / "records" / ("c" * 64 + ".json"))
    assert records.get("c" * 64) is None


def test_listing_digest(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to("f")
    first = listing_digest(str(tmp_path))
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("g")
    second = listing_digest(str(tmp_path))
    (tmp_path / "f").chmod(0o755)
    third = listing_digest(str(tmp_path))
    assert len({first, second, third}) == 3
    assert listing_digest(str(tmp_path / "nothing")) == "absent"


def good_record() -> dict[str, object]:
    return {"format": 1, "files": {"/r/xarch.yaml": [33188, "0" * 64, [1, 2, 1], []]},
            "folders": {"/r": "1" * 64}, "resolved": {}, "walked": ["/r"], "index": "sha256:" + "2" * 64,
            "images": [], "tag": "latest", "default_output": "dist/x", "recipe": "/r/xarch.yaml", "epoch": 1}


@pytest.mark.parametrize("change", [
    {"format": 2}, {"files": []}, {"files": {"/r/xarch.yaml": "x"}}, {"folders": {"/": 3}},
    {"index": "sha256:../../x"}, {"recipe": "/etc/passwd"}, {"default_output": "/tmp/victim"},
    {"default_output": "dist/../../x"}, {"default_output": "dist"}, {"walked": ["/elsewhere"]},
    {"resolved": []},
    {"index": "sha256:" + "A" * 64}, {"images": {}}, {"tag": 1}, {"epoch": True}, {"epoch": "1"},
    {"recipe": None},
])
def test_hostile_records_are_refused(change: dict[str, object]) -> None:
    BuildRecord.from_json(json.dumps(good_record()).encode())
    with pytest.raises(RecordError):
        BuildRecord.from_json(json.dumps({**good_record(), **change}).encode())
    for data in (b"", b"[]", b"null", b"{", b"\xff", b'{"format": 1}'):
        with pytest.raises(RecordError):
            BuildRecord.from_json(data)


def test_record_store_keys(tmp_path: Path) -> None:
    records = RecordStore(tmp_path, BuildRecord.from_json)
    with pytest.raises(ValueError):
        records.get("../../etc/passwd")
    assert records.get("a" * 64) is None
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / ("b" * 64 + ".json")).write_bytes(b"\0" * 100)
    assert records.get("b" * 64) is None


def test_image_records_round_trip_and_refuse_corrupt_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    layer = Layer("app", "sha256:" + "3" * 64, b"not really gzip")
    image = Image({"architecture": "arm64", "os": "linux"}, b'{"config": 1}', b'{"manifest": 1}', (layer,))
    store_image(store, image)
    record_ = json.loads(json.dumps(image_record(image)))
    again = image_from_record(store, record_)
    assert again.blobs() == image.blobs() and again.platform == image.platform
    blob = store.path(layer.digest.partition(":")[2])
    blob.write_bytes(b"not really gzjp")  # same size, one byte off
    with pytest.raises(RecordError, match="missing or corrupt"):
        image_from_record(store, record_)
    assert not blob.exists()  # a corrupt blob leaves the store, so the next build writes it again
    hostile: object
    for hostile in ({}, [], {"layers": [{"digest": "sha256:../../../etc/passwd"}]}, {"layers": None}):
        with pytest.raises(RecordError):
            image_from_record(store, hostile)


def test_cache_entries_that_are_fifos_are_not_waited_on(tmp_path: Path) -> None:
    """An image cache entry or a kept parse that is a FIFO is damaged, not a reason to hang."""
    from xarch.build.imagecache import ImageCache
    from xarch.sources.debian.lock import _parsed_yaml

    cache = ImageCache(Store(tmp_path))
    cache.directory.mkdir(parents=True)
    os.mkfifo(cache.directory / ("d" * 64 + ".json"))
    assert cache.get("sha256:" + "d" * 64) is None
    parsed = tmp_path / "parsed"
    parsed.mkdir()
    text = "version: 1\n"
    import hashlib

    os.mkfifo(parsed / f"{hashlib.sha256(text.encode()).hexdigest()}.json")
    assert _parsed_yaml(text, parsed) == {"version": 1}
