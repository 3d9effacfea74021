"""Benchmark xarch side by side with what users pick instead, and write BENCHMARKS.md.

Usage:
  scripts/bench [--case nginx,hello-c,layer,push,noop,big] [--runs N] [--slow-runs N] [--report-file FILE]
  scripts/bench --report            # only rewrite BENCHMARKS.md from the stored results

Cases (each tool in alternation, several runs, medians):
  nginx    xarch build of examples/nginx vs a Dockerfile through docker buildx (QEMU for arm64), cold and warm
  hello-c  a C program for arm64: xarch --strategy cross / emulate vs buildx compiling under QEMU
  layer    xarch's layer writer vs GNU tar | gzip -n (and pigz -n) on a 300 MB tree
  push     xarch push vs skopeo copy --all to a local docker-registry, first push and re-push
  noop     xarch build of examples/nginx a second time, everything cached (+ -X importtime, cProfile)
  big      peak RSS and wall of xarch build / the layer writer on a 978 MiB (63k files) and a 5 GiB tree
           vs tar --sort=name | pigz

The raw results live in BENCHMARKS.md itself (a JSON comment at its end), so one case can
be rerun (`scripts/bench --case noop`) and the rest of the report is kept; so are the sections
written by hand after that comment. A quick try that must not replace the real numbers:
`scripts/bench --case noop --runs 1 --report-file /tmp/bench.md` (the file starts as a copy of
BENCHMARKS.md's stored results when it does not exist). Needs root, dockerd, buildx, QEMU
binfmt_misc, docker-registry, skopeo, mmdebstrap (scripts/setup-host) and the base images from
scripts/bench-base-image (built on demand). Work files go to $XARCH_BENCH_DIR (default
/var/tmp/xarch-bench). `XARCH_BENCH_BIG_TREES=1g scripts/bench --case big` measures only the
1 GB tree of the big case; the 5 GB tree keeps its stored rows.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import big, builds, layers, noop, pushing
from benchmarks.measuring import WORK, child_pythonpath, loadavg, log
from benchmarks.report import REPORT, machine, read_report, versions, write_report

# Every case: the function measuring it (runs → its stored results) and whether it is slow
# (--slow-runs) or fast (--runs). The order is the order of a full run.
CASES: dict[str, tuple[Callable[[int], dict[str, object]], bool]] = {
    "nginx": (builds.case_nginx, True),
    "hello-c": (builds.case_hello_c, True),
    "layer": (layers.case_layer, False),
    "push": (pushing.case_push, False),
    "noop": (noop.case_noop, False),
    "big": (big.case_big, True),
}


def positive(text: str) -> int:
    """An argparse type: a whole number ≥ 1."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not ≥ 1")
    return number


def main(argv: list[str] | None = None) -> None:
    """The command line of scripts/bench (ARGV without the program name; sys.argv when None).
    Exits 2 on a bad option or an unknown case, 1 with one line when a measured command fails."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", default=",".join(CASES), help="comma-separated: " + ",".join(CASES))
    parser.add_argument(
        "--runs", type=positive, default=5, help="runs of the fast cases (layer, push, noop)"
    )
    parser.add_argument(
        "--slow-runs", type=positive, default=3, help="runs of the slow cases (nginx, hello-c, big)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the report from its stored results"
    )
    parser.add_argument(
        "--report-file",
        type=Path,
        default=REPORT,
        metavar="FILE",
        help="read the stored results from FILE (from BENCHMARKS.md if FILE does not exist yet) "
        "and write the report there; default BENCHMARKS.md",
    )
    args = parser.parse_args(argv)
    report: Path = args.report_file
    data, hand_written = read_report(report if report.exists() else REPORT)
    if not args.report:
        cases = [c.strip() for c in args.case.split(",") if c.strip()]
        unknown = [c for c in cases if c not in CASES]
        if unknown or not cases:
            parser.error(f"unknown case {', '.join(unknown) or '(none given)'}; known: {', '.join(CASES)}")
        # Every child (xarch, the layer writer, …) runs this checkout's code (benchmarks/run_xarch.py).
        os.environ["PYTHONPATH"] = child_pythonpath()
        WORK.mkdir(parents=True, exist_ok=True)
        data["meta"] = {
            "machine": machine(),
            "versions": versions(),
            "when": {**data.get("meta", {}).get("when", {})},
        }
        for case in cases:
            function, slow = CASES[case]
            runs = args.slow_runs if slow else args.runs
            log(f"case {case}: {runs} runs")
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            loadavg_start = loadavg()
            result = function(runs)
            if case == "big":  # trees left out by XARCH_BENCH_BIG_TREES keep their stored rows
                result = {**data.get(case, {}), **result}
            data[case] = result
            data["meta"]["when"][case] = f"{started} (load average before {loadavg_start}, after {loadavg()})"
            write_report(report, data, hand_written)  # after every case: an interrupted run keeps what it has
            log(f"case {case} done; {report} written")
    write_report(report, data, hand_written)
    log(f"wrote {report}")
