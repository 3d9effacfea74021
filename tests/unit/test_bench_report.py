"""scripts/bench's report: stored results read back, hand-written sections kept, bad input one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from benchmarks.report import DATA_MARK, read_report, render, write_report  # noqa: E402

BENCH = [sys.executable, str(REPO / "scripts/bench")]
HAND = "\n\n## Measured by hand\n\nA table | with a --> in it.\n"


def test_rewriting_keeps_the_results_and_the_hand_written_sections(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    data, _ = read_report(REPO / "BENCHMARKS.md")
    assert {"meta", "nginx", "noop", "layer"} <= data.keys()
    write_report(report, data, HAND)
    again, hand = read_report(report)
    assert again == data and hand == HAND
    first = report.read_bytes()
    write_report(report, again, hand)
    assert report.read_bytes() == first
    assert report.read_text().startswith(render(data).rstrip("\n"))
    assert not list(tmp_path.glob(".*partial"))


def test_scripts_bench_report_keeps_what_follows_the_stored_results(tmp_path: Path) -> None:
    report = tmp_path / "copy.md"
    shutil.copy(REPO / "BENCHMARKS.md", report)
    with report.open("a") as handle:
        handle.write("\n## Added by hand\n\nkept.\n")
    result = subprocess.run([*BENCH, "--report", "--report-file", str(report)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    text = report.read_text()
    assert text.endswith("## Added by hand\n\nkept.\n")
    assert text.count(DATA_MARK) == 1
    assert "## Writing a layer of a 300 MB tree" in text  # a rendered section


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (f"{DATA_MARK}\n{{not json\n-->\n", "the stored results are not JSON"),
        (f"{DATA_MARK}\n{{}}\n", "has no end line '-->'"),
    ],
)
def test_a_broken_report_is_one_line_naming_it(tmp_path: Path, stored: str, message: str) -> None:
    report = tmp_path / "broken.md"
    report.write_text("# Benchmarks\n\n" + stored)
    result = subprocess.run([*BENCH, "--report", "--report-file", str(report)], capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert str(report) in result.stderr and message in result.stderr
    assert report.read_text() == "# Benchmarks\n\n" + stored  # nothing written


@pytest.mark.parametrize("args", [["--case", "nope"], ["--runs", "0"]])
def test_bad_options_exit_2(args: list[str]) -> None:
    result = subprocess.run([*BENCH, *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
