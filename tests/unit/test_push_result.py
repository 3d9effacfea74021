"""What a push prints (xarch.registry.result.print_result), shared by a push and its replay
(tests/integration/test_push_record.py checks the two print the same)."""

from __future__ import annotations

import io
import json

from xarch.registry.result import PushResult, TransferStats, print_result

DIGEST = "sha256:" + "a" * 64


def result(**changes: object) -> PushResult:
    fields: dict[str, object] = {"reference": f"h:5000/r:v1@{DIGEST}", "digest": DIGEST,
                                 "media_type": "application/vnd.oci.image.index.v1+json",
                                 "manifests": {"linux/amd64": DIGEST}, **changes}
    return PushResult(**fields)  # type: ignore[arg-type]


def printed(value: PushResult, as_json: bool = False, verb: str = "pushed") -> str:
    out = io.StringIO()
    print_result(value, as_json, verb, out)
    return out.getvalue()


def test_plain_lines() -> None:
    stats = TransferStats()
    stats.add(blobs_sent=1, bytes_sent=2_000_000, blobs_skipped=2, bytes_skipped=10)
    assert printed(result(stats=stats)).splitlines() == [
        f"pushed h:5000/r:v1@{DIGEST}",
        f"  linux/amd64 {DIGEST}",
        "  blobs: 1 sent (2.0 MB), 2 already there (10 B), 0 mounted (0 B)",
    ]


def test_referrers_say_how_they_went() -> None:
    assert "through the referrers API" in printed(result(referrers={DIGEST: "api"}))
    assert "through the referrers tag" in printed(result(referrers={DIGEST: "api", "x": "tag"}))


def test_json_holds_the_counters_and_not_the_record_s_fields() -> None:
    value = result(origin="http://h:5000", authenticated=False, blobs=[(DIGEST, 3)])
    data = json.loads(printed(value, as_json=True))
    assert data["digest"] == DIGEST and data["blobs_sent"] == 0
    assert data["manifests"] == {"linux/amd64": DIGEST}
    assert not {"origin", "authenticated", "blobs"} & set(data)


def test_a_platform_name_from_a_layout_cannot_drive_the_terminal() -> None:
    text = printed(result(manifests={"linux/\x1b[2Jx": DIGEST}))
    assert "\x1b" not in text
