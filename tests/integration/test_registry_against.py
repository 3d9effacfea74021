"""`verify --against` compares the whole index, both ways (issue 10, item 5): the index digest and
every entry (platform with variant, media type, digest, size, annotations); missing, extra and
duplicated entries each get their own row; two `unknown/unknown` entries stay two rows."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.support.registry import Registry, make_layout
from xarch.oci.digest import canonical_json, sha256_digest
from xarch.registry.imageref import parse_image_ref
from xarch.registry.push import push_layout
from xarch.verify.published import (
    DIFFERS,
    DUPLICATED,
    EXTRA,
    INDEX,
    MISSING,
    NOT_COMPARED,
    NOT_REBUILT,
    SAME,
    Side,
    compare,
    print_against,
    published_side,
    side_of_index,
    verify_against,
)

ATTESTATION = {"architecture": "unknown", "os": "unknown"}


def entry(digest_seed: str, platform: dict[str, str], **annotations: str) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": "sha256:" + sha256_digest(digest_seed.encode())[7:], "size": 500,
                                  "platform": platform}
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


def index(*entries: dict[str, Any], **annotations: str) -> Side:
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                "manifests": list(entries)}
    if annotations:
        document["annotations"] = annotations
    data = canonical_json(document)
    return side_of_index("test", sha256_digest(data), data)


AMD64 = entry("amd64", {"architecture": "amd64", "os": "linux"})
ARM64 = entry("arm64", {"architecture": "arm64", "os": "linux"})
ARMV7 = entry("armv7", {"architecture": "arm", "os": "linux", "variant": "v7"})
ATT1 = entry("att1", ATTESTATION, **{"vnd.docker.reference.type": "attestation-manifest"})
ATT2 = entry("att2", ATTESTATION, **{"vnd.docker.reference.type": "attestation-manifest"})


def statuses(local: Side, published: Side, **kwargs: Any) -> list[tuple[str, str]]:
    return [(row.platform, row.status) for row in compare(local, published, **kwargs).rows]


def test_the_same_index_is_identical() -> None:
    report = compare(index(AMD64, ARM64, ATT1, ATT2), index(AMD64, ARM64, ATT1, ATT2))
    assert report.identical
    assert [(r.platform, r.status) for r in report.rows] == [
        ("linux/amd64", SAME), ("linux/arm64", SAME), ("unknown/unknown", SAME), ("unknown/unknown", SAME),
        (INDEX, SAME)]


def test_an_extra_entry_pointing_at_another_image_is_named() -> None:
    s390x = {**AMD64, "platform": {"architecture": "s390x", "os": "linux"}}
    report = compare(index(AMD64, ARM64), index(AMD64, ARM64, s390x))
    assert not report.identical
    assert [(r.platform, r.status) for r in report.differences] == [("linux/s390x", EXTRA), (INDEX, DIFFERS)]
    assert report.differences[0].published == AMD64["digest"]


def test_missing_duplicated_and_reordered_entries() -> None:
    assert statuses(index(AMD64, ARM64), index(AMD64)) == [
        ("linux/amd64", SAME), ("linux/arm64", MISSING), (INDEX, DIFFERS)]
    assert statuses(index(AMD64, ARM64), index(AMD64, ARM64, AMD64)) == [
        ("linux/amd64", SAME), ("linux/amd64", DUPLICATED), ("linux/arm64", SAME), (INDEX, DIFFERS)]
    reordered = compare(index(AMD64, ARM64), index(ARM64, AMD64))
    assert [r.status for r in reordered.rows] == [SAME, SAME, DIFFERS]
    assert reordered.rows[-1].detail == "entries"


def test_two_attestation_entries_stay_two_rows() -> None:
    changed = {**ATT2, "digest": "sha256:" + "e" * 64}
    report = compare(index(AMD64, ATT1, ATT2), index(AMD64, ATT1, changed))
    unknown = [(r.status, r.local, r.published) for r in report.rows if r.platform == "unknown/unknown"]
    assert unknown == [(SAME, ATT1["digest"], ATT1["digest"]), (DIFFERS, ATT2["digest"], changed["digest"])]
    one_dropped = compare(index(AMD64, ATT1, ATT2), index(AMD64, ATT2))
    assert [(r.platform, r.status, r.local) for r in one_dropped.differences][0] == (
        "unknown/unknown", MISSING, ATT1["digest"])


def test_every_descriptor_field_is_compared() -> None:
    cases = {
        "annotation org.example.x": {**AMD64, "annotations": {"org.example.x": "1"}},
        "size": {**AMD64, "size": 501},
        "mediaType": {**AMD64, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"},
        "platform": {**AMD64, "platform": {"architecture": "amd64", "os": "linux", "os.version": "1"}},
        "urls": {**AMD64, "urls": ["http://x"]},
    }
    for detail, published in cases.items():
        report = compare(index(AMD64), index(published))
        assert [(r.status, r.detail) for r in report.rows[:1]] == [(DIFFERS, detail)], detail
    variant = compare(index(ARMV7), index({**ARMV7, "platform": {"architecture": "arm", "os": "linux",
                                                                  "variant": "v6"}}))
    assert [(r.platform, r.status) for r in variant.rows] == [
        ("linux/arm/v7", MISSING), ("linux/arm/v6", EXTRA), (INDEX, DIFFERS)]
    annotated = compare(index(AMD64), index(AMD64, **{"org.example.y": "2"}))
    assert (annotated.rows[-1].status, annotated.rows[-1].detail) == (DIFFERS, "annotations")


def test_a_partial_rebuild_shows_what_it_left_out() -> None:
    report = compare(index(AMD64), index(AMD64, ARM64), not_rebuilt=frozenset({"linux/arm64"}))
    assert [(r.platform, r.status) for r in report.rows] == [
        ("linux/amd64", SAME), ("linux/arm64", NOT_REBUILT), (INDEX, NOT_COMPARED)]
    assert report.identical
    s390x = {**AMD64, "platform": {"architecture": "s390x", "os": "linux"}}
    tampered = compare(index(AMD64), index(AMD64, ARM64, s390x), not_rebuilt=frozenset({"linux/arm64"}))
    assert [(r.platform, r.status) for r in tampered.differences] == [("linux/s390x", EXTRA)]


def test_against_a_registry_layout_and_archive(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    pushed = push_layout(layout.path, f"{registry.host}/demo/app:v1")
    local = published_side(parse_image_ref(str(layout.path)))
    assert local.digest == pushed.digest
    report = verify_against(local, parse_image_ref(f"{registry.host}/demo/app:v1"))
    assert report.identical and report.kind == "registry"
    other = published_side(parse_image_ref(str(make_layout(tmp_path / "other", ["amd64", "arm64"],
                                                           seed=2).path)))
    report = verify_against(other, parse_image_ref(f"docker://{registry.host}/demo/app:v1"))
    assert [r.status for r in report.rows] == [DIFFERS, DIFFERS, DIFFERS]
    out = io.StringIO()
    print_against(report, False, Console(file=out, width=250))
    text = out.getvalue()
    assert "does NOT match: 3 difference(s)" in text
    assert f"DIFFERS: index {pushed.digest}" in text
    assert json.loads(json.dumps(report.to_json()))["identical"] is False
