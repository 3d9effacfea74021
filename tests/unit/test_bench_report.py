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


def edit_stats(wall: float) -> dict[str, object]:
    return {"runs": 3, "wall": wall, "walls": [wall] * 3, "cpu": 0.4, "daemon_cpu": 0.0,
            "total_cpu": 0.4, "peak_rss_mb": 60.0}


@pytest.mark.parametrize(("cross", "status"), [(0.5, "| met |"), (0.7, "| **NOT met** |")])
def test_the_hello_c_edit_rows_and_their_target(cross: float, status: str) -> None:
    data, _ = read_report(REPO / "BENCHMARKS.md")
    stats = data["hello-c"]["stats"]
    stats["buildx_compile"] = edit_stats(1.25)
    stats["xarch_cross_edit"] = edit_stats(cross)
    stats["xarch_emulate_edit"] = edit_stats(2.5)
    text = render(data)
    target = next(line for line in text.splitlines() if line.startswith("| hello-c one-line edit"))
    assert f"| {cross:.2f} s, {1.25 / cross:.1f}× |" in target and target.endswith(status)
    assert f"| xarch --strategy cross, edit (one-line edit of hello.c, warm cache) | {cross:.2f} s |" in text
    assert f"**{1.25 / cross:.1f}×; 0.5×**" in text  # buildx compile / cross edit; / emulate edit


def test_results_stored_before_the_edit_rows_render_without_them() -> None:
    data, _ = read_report(REPO / "BENCHMARKS.md")
    for label in ("xarch_cross_edit", "xarch_emulate_edit"):
        data["hello-c"]["stats"].pop(label, None)
    text = render(data)
    assert "## A C program compiled for arm64" in text
    assert "| hello-c one-line edit" not in text and ", edit (one-line" not in text  # no row


def test_a_layer_run_without_pigz_shows_its_target_as_missed() -> None:
    """A machine without pigz ran the layer case and the 1.5× pigz row vanished from the targets:
    a target whose anchor did not run is shown, as not measured and not met."""
    data, _ = read_report(REPO / "BENCHMARKS.md")
    data["layer"]["stats"].pop("tar_pigz")
    target = next(line for line in render(data).splitlines()
                  if line.startswith("| layer writing (300 MB tree) ≥ 1.5×"))
    assert "not measured: pigz was not installed" in target and target.endswith("| **NOT met** |")
