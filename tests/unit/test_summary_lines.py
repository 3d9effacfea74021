"""The build and inspect summary in a pipe or a CI log (xarch.summary.print_summary without a
console): plain aligned lines, no rich; on a terminal it is rich's table (the same columns)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from xarch.summary import ImageRow, Summary, print_summary

AMD = "sha256:" + "a" * 64
ARM = "sha256:" + "b" * 64


def summary() -> Summary:
    rows = (ImageRow("linux/amd64", AMD, 14_900_000, 2), ImageRow("linux/arm/v7\x1b[2J", ARM, 900, 12))
    return Summary("oci:out", "sha256:" + "c" * 64, rows, "oci")


def test_plain_lines_in_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary(summary(), False, None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "oci:out (oci)"
    assert lines[1].split() == ["PLATFORM", "MANIFEST", "DIGEST", "COMPRESSED", "LAYERS"]
    assert lines[2].split() == ["linux/amd64", AMD, "14.9", "MB", "2"]
    assert "\x1b" not in lines[3] and lines[3].split()[1:] == [ARM, "900", "B", "12"]
    assert lines[4] == "index digest: sha256:" + "c" * 64
    # columns line up: every digest starts where the header's does, sizes and counts end together
    assert {line.index("sha256:") for line in lines[2:4]} == {lines[1].index("MANIFEST")}
    assert len({len(line) for line in lines[1:4]}) == 1


def test_the_same_columns_on_a_terminal() -> None:
    out = io.StringIO()
    print_summary(summary(), False, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "┃ platform" in text and AMD in text and "14.9 MB" in text and "\x1b" not in text
    assert text.rstrip().endswith("index digest: sha256:" + "c" * 64)
