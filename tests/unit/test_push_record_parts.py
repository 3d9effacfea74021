"""Parts of push records (xarch.cli.pushreplay, xarch.registry.pushrecord): the command line read
without click, the record's checks, the environment. The whole path runs against a real registry
in tests/integration/test_push_record.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.replay_tables import assert_every_option_is_placed
from xarch.cli.push import push_command
from xarch.cli.pushreplay import NOT_REPLAYED, REPLAYED, parse
from xarch.records import RecordError, Witness
from xarch.registry.pushrecord import PushRecord, mismatch, proxied

TOP = "sha256:" + "a" * 64
AMD = "sha256:" + "b" * 64
BLOB = "sha256:" + "c" * 64


def test_every_push_option_is_placed() -> None:
    """An option added to push_command must be declared replayed (with its arity) or not."""
    assert_every_option_is_placed(push_command, REPLAYED, NOT_REPLAYED)


@pytest.mark.parametrize("argv", [
    ["build", "x", "r/x"], ["push", "x"], ["push", "x", "r/x", "extra"],
    ["push", "x", "r/x", "--mount-from", "a"],
    ["push", "x", "r/x", "--ca-cert", "c.pem"], ["push", "x", "r/x", "-u", "bob"], ["push", "--", "x", "r/x"],
    ["push", "x", "r/x", "-qj", "3"], ["push", "x", "r/x", "--json=1"], ["push", "x", "r/x", "--format"],
    ["push", "x", "r/x", "--password-stdin"], ["push", "x", "r/x", "--help"], ["push", "x", "r/x", "-j3"],
])
def test_not_replayable(argv: list[str]) -> None:
    assert parse(argv) is None


def test_parse_reads_what_changes_how_it_is_asked_and_said() -> None:
    request = parse(["push", "--format=docker", "lay", "-j", "4", "h/r:t", "--insecure", "-q", "--json",
                     "--chunk-size", "9000000", "--format", "oci"])
    assert request is not None
    assert (request.layout, request.ref, request.insecure, request.quiet, request.as_json) == \
        ("lay", "h/r:t", True, True, True)
    assert not request.docker_format  # the last --format counts, as with click
    assert request.argv[0] == "push" and "9000000" in request.argv


def record(**changes: object) -> PushRecord:
    files = {"/l/blobs/sha256/" + d[7:]: [0o100644, d[7:], [1, 2, 1], []] for d in (TOP, AMD)}
    raw = {"format": 1, "kind": "push", "files": files, "folders": {"/l": "x"}, "resolved": {}, "walked": [],
           "origin": "http://127.0.0.1:5000", "repository": "team/app", "tag": "v1", "digest": TOP,
           "media_type": "application/vnd.oci.image.index.v1+json",
           "reference": f"127.0.0.1:5000/team/app:v1@{TOP}", "manifests": [["linux/amd64", AMD]],
           "blobs": [[BLOB, 10]], "config_probe": [["/root/.docker/config.json", False]], **changes}
    return PushRecord.from_json(json.dumps(raw).encode())


def test_a_record_round_trips() -> None:
    made = record()
    assert PushRecord.from_json(made.to_json()) == made
    assert isinstance(made.witness, Witness)


@pytest.mark.parametrize("changes", [
    {"kind": "build"}, {"format": 0}, {"origin": "ftp://127.0.0.1:5000"}, {"origin": "http://a b"},
    {"repository": "Team/App"}, {"repository": "../x"}, {"tag": "v1/../x"}, {"tag": ""},
    {"digest": "sha256:x"},
    {"reference": f"127.0.0.1:5000/team/app:v1@{AMD}"}, {"reference": "a\x1b[2J@" + TOP},
    {"manifests": [["linux/amd64", "sha256:../../x"]]}, {"manifests": {}}, {"manifests": [[1, AMD]]},
    {"blobs": [["sha256:x", 1]]},
    {"blobs": [[BLOB, -1]]}, {"blobs": [[BLOB, True]]}, {"media_type": "a\nb"}, {"files": []},
    {"walked": ["/elsewhere"]}, {"config_probe": [["/x", "no"]]}, {"config_probe": {}},
])
def test_a_malformed_record_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        record(**changes)


def test_a_record_speaks_only_for_its_own_reference_and_files() -> None:
    made = record()
    assert mismatch(made, "127.0.0.1:5000/team/app:v1", True) == ""
    assert mismatch(made, "127.0.0.1:5000/team/app", True) == ""  # the layout's tag, as a push takes it
    assert "registry" in mismatch(made, "127.0.0.1:5001/team/app:v1", True)
    assert "repository" in mismatch(made, "127.0.0.1:5000/team/other:v1", True)
    assert "tag" in mismatch(made, "127.0.0.1:5000/team/app:v2", True)
    forged = record(manifests=[["linux/amd64", BLOB]])  # a digest no file read holds
    assert "digests" in mismatch(forged, "127.0.0.1:5000/team/app:v1", True)
    assert mismatch(forged, "127.0.0.1:5000/team/app:v1", False) == ""  # --format docker, oci-archive


@pytest.mark.parametrize(("name", "origin", "routed"), [
    ("HTTP_PROXY", "http://h:5000", True), ("http_proxy", "http://h:5000", True),
    ("ALL_PROXY", "https://h", True), ("HTTPS_PROXY", "https://h", True),
    ("HTTPS_PROXY", "http://h:5000", True),  # the full push asks HTTPS first, through it
    ("HTTP_PROXY", "https://h", False),
    ("NO_PROXY", "http://h", False),
])
def test_a_proxy_for_the_scheme_is_named(monkeypatch: pytest.MonkeyPatch, name: str, origin: str,
                                         routed: bool) -> None:
    for other in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, "http://proxy:3128")
    assert bool(proxied(origin)) is routed
    assert (name in proxied(origin)) is routed


def test_the_record_file_is_the_key_s_only(tmp_path: Path) -> None:
    from xarch.records import RecordStore

    records = RecordStore(tmp_path, PushRecord.from_json)
    records.put("d" * 64, record())
    assert records.get("d" * 64) == record()
    with pytest.raises(ValueError):
        records.get("../../etc/passwd")


def test_a_blob_whose_bytes_are_not_its_name_is_never_replayed() -> None:
    # Blobs are hashed once, when the record is made (Recorder.defer_hashing): a change during the
    # push that left the file's times alone shows as a name that is not the sha256 of its bytes.
    made = record()
    config = "/l/blobs/sha256/" + "e" * 64
    forged = PushRecord(Witness({**made.witness.files, config: [0o100644, "f" * 64, [1, 3, 1], []]},
                                made.witness.folders), made.origin, made.repository, made.tag, made.digest,
                        made.media_type, made.reference, made.manifests, made.blobs, made.config_probe)
    assert "does not hold the blob its name says" in mismatch(forged, "127.0.0.1:5000/team/app:v1", True)
    assert "does not hold" in mismatch(forged, "127.0.0.1:5000/team/app:v1", False)  # archives, docker too


def test_the_printed_order_of_platforms_is_kept() -> None:
    # A full push prints the platforms in the layout's order; sorted JSON keys would reorder them.
    made = record(manifests=[["linux/arm64", AMD], ["linux/amd64", TOP]])
    assert list(PushRecord.from_json(made.to_json()).manifests) == ["linux/arm64", "linux/amd64"]


def test_a_record_file_is_the_user_s_own_and_never_a_symlink(tmp_path: Path) -> None:
    from xarch.records import RecordStore

    records = RecordStore(tmp_path, PushRecord.from_json)
    records.put("d" * 64, record())
    path = tmp_path / "records" / ("d" * 64 + ".json")
    path.chmod(0o644)
    assert records.get("d" * 64) == record() and path.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other.json"
    other.write_bytes(path.read_bytes())
    other.chmod(0o644)
    path.unlink()
    path.symlink_to(other)
    assert records.get("d" * 64) is None and other.stat().st_mode & 0o777 == 0o644


def test_a_config_also_listed_as_a_layer_stays_witnessed_by_its_bytes(tmp_path: Path) -> None:
    from xarch.registry.pushrecord import blob_folder, layer_files

    folder = tmp_path / "blobs" / "sha256"
    folder.mkdir(parents=True)
    config, layer = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    manifest = {"config": {"digest": config, "size": 3},
                "layers": [{"digest": config, "size": 3}, {"digest": layer, "size": 5}]}
    (folder / ("3" * 64)).write_text(json.dumps(manifest))
    paths = [blob_folder(tmp_path) + "3" * 64]
    assert layer_files(tmp_path, paths, [[config, 3], [layer, 5]]) == {blob_folder(tmp_path) + "2" * 64}
