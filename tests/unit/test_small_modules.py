"""Unit tests of small modules no other test imported (issue 15): sizes, text diffs, the JSON
shape checks of image documents, dpkg's field order and how `xarch diff` prints its result."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from xarch.diff.compare import Difference, DiffResult
from xarch.diff.report import MAX_ROWS, MAX_VALUE, print_diff
from xarch.diff.textdiff import unified
from xarch.oci.schema import DocumentError, Kind, parse_document
from xarch.sources.debian.dpkgdb import dpkg_order
from xarch.units import human_size

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_234_567, "1.2 MB"), (5 * 10**9, "5.0 GB"),
    (3 * 10**12, "3000.0 GB"),  # no TB: GB is the largest unit registries print
])
def test_human_size_uses_decimal_units(size: int, text: str) -> None:
    assert human_size(size) == text


def test_a_text_change_is_a_unified_diff() -> None:
    diff = unified("etc/motd", b"hello\nworld\n", b"hello\nthere\n", "A", "B")
    assert diff == "--- A/etc/motd\n+++ B/etc/motd\n@@ -1,2 +1,2 @@\n hello\n-world\n+there\n"


def test_a_missing_final_newline_is_said_as_diff_says_it() -> None:
    diff = unified("x", b"a\n", b"a\nb")
    assert diff is not None and diff.endswith("+b\n\\ No newline at end of file\n")


@pytest.mark.parametrize(("a", "b"), [(b"text\n", b"bin\0ary"), (b"\xff\xfe", b"text\n"), (b"a\0", b"b\0")])
def test_binary_or_non_utf8_content_gets_no_text_diff(a: bytes, b: bytes) -> None:
    assert unified("f", a, b) is None


def _manifest() -> dict[str, object]:
    return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST,
                        "size": 10}]}


def test_a_good_manifest_and_index_parse_to_their_json() -> None:
    manifest = _manifest()
    assert parse_document(json.dumps(manifest).encode(), "m.json", "image") == manifest
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": DIGEST, "size": 5,
                                                "platform": {"architecture": "arm64", "os": "linux"}}]}
    assert parse_document(json.dumps(index).encode(), "index.json", "image") == index


@pytest.mark.parametrize(("document", "kind", "message"), [
    (b"{", "manifest", "blob: not JSON ("),
    (b"[]", "manifest", "blob: not an image manifest (should be a JSON object)"),
    (json.dumps({**_manifest(), "layers": [{"digest": DIGEST}]}).encode(), "manifest",
     "blob: not an image manifest (layers[0].mediaType: Field required)"),
    (json.dumps({"manifests": [{"mediaType": "x", "digest": DIGEST, "size": "big"}]}).encode(), "image",
     "blob: not an image index (manifests[0].size: "),
    (json.dumps([{"Config": "c.json"}]).encode(), "docker-manifest",
     "blob: not a docker-archive manifest.json ([0].Layers: Field required)"),
    (b"[" * 100_000 + b"]" * 100_000, "index", "blob: JSON nested deeper than 64 levels"),
])
def test_a_document_of_the_wrong_shape_is_one_error_naming_the_field(document: bytes, kind: Kind,
                                                                     message: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(document, "blob", kind)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_dpkg_order_puts_known_fields_first_and_keeps_the_rest_in_order() -> None:
    fields = [("Homepage", "h"), ("version", "1"), ("Built-Using", "b"), ("Package", "p"), ("Depends", "d"),
              ("Status", "install ok installed")]
    assert dpkg_order(fields) == [("Package", "p"), ("Status", "install ok installed"), ("version", "1"),
                                  ("Depends", "d"), ("Homepage", "h"), ("Built-Using", "b")]


def _difference(item: str, a: object = "x", b: object = "y", diff: str | None = None) -> Difference:
    return Difference("linux/amd64", "layer 1", item, "content", a, b, ("layer 1", "manifest", "index"), diff)


def test_identical_images_are_one_line_and_their_notes() -> None:
    console = Console(record=True, width=200)
    print_diff(DiffResult("A.tar", "B.tar", notes=["only linux/amd64 compared"]), False, console)
    assert console.export_text() == "identical: A.tar and B.tar\nnote: only linux/amd64 compared\n"


def test_the_table_escapes_markup_shortens_values_and_shows_text_diffs() -> None:
    console = Console(record=True, width=400)
    result = DiffResult("A", "B", [_difference("[red]x[/red]", "v" * 200, None, diff="-old\n+new\n")])
    print_diff(result, False, console)
    text = console.export_text()
    assert "[red]x[/red]" in text  # printed as written, not read as rich markup
    assert "v" * (MAX_VALUE - 1) + "…" in text and "v" * MAX_VALUE not in text
    assert "linux/amd64 layer 1: /[red]x[/red]\n-old\n+new\n" in text
    assert text.endswith("1 difference; digests that differ: layer 1, manifest, index\n")


def test_a_long_result_is_cut_and_says_how_much_more(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(record=True, width=200)
    result = DiffResult("A", "B", [_difference(f"f{i}") for i in range(MAX_ROWS + 5)])
    print_diff(result, False, console)
    assert "… and 5 more (see --json)" in console.export_text()
    capsys.readouterr()  # the table
    print_diff(result, True, console)  # --json: every difference, on stdout
    assert len(json.loads(capsys.readouterr().out)["differences"]) == MAX_ROWS + 5
