"""Rows of the cached rebuild: a no-op xarch build, xarch --version, import times, a profile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable

from benchmarks.images import layout_facts
from benchmarks.markdown import TIME_HEADER, row
from benchmarks.measuring import REPO, WORK, XARCH, log, measure, profile_xarch, shown, stats


def case_noop(runs: int) -> dict[str, object]:
    """A first build of examples/nginx fills the caches; then 2×RUNS identical builds (everything
    cached), `xarch --version` once, `python -X importtime -c 'import xarch.cli'` summed by package,
    one cProfile of a cached build. Returns the stored results of the "noop" case."""
    recipe = REPO / "examples/nginx/xarch.yaml"
    cache = WORK / "cache-noop"
    output = WORK / "out-noop"
    env = {"XARCH_CACHE": str(cache)}
    cmd = [*XARCH, "build", "-q", "-f", str(recipe), "-o", f"oci:{output}"]
    log("noop: first build (fills the caches)")
    measure(cmd, env=env)
    samples, unrecorded = [], []
    for _ in range(runs * 2):  # cheap: twice the runs
        samples.append(measure(cmd, env=env))
        # the same without the build record (removed first): the recipe and lock loaded, the image cache hits
        shutil.rmtree(cache / "records", ignore_errors=True)
        unrecorded.append(measure(cmd, env=env))
    digests = {layout_facts(output)["index"]}
    version = measure([*XARCH, "--version"])
    importtime = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import xarch.cli"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    by_package: dict[str, int] = {}
    total = 0
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            package = match[3].split(".")[0]
            if package == "xarch":
                package = ".".join(match[3].split(".")[:3])
            by_package[package] = by_package.get(package, 0) + int(match[1])
            total = max(total, int(match[2]))
    top_level = sorted(((us, name) for name, us in by_package.items()), reverse=True)[:14]
    profile = profile_xarch(cmd[3:], env=env)
    return {
        "stats": {"xarch_noop": stats(samples), "xarch_noop_unrecorded": stats(unrecorded),
                  "xarch_version": stats([version])},
        "command": f"XARCH_CACHE=<warm> {shown(cmd)}  (a second time, same output)",
        "digests_stable": len(digests) == 1,
        "import_total_us": total,
        "import_top": [[us, name] for us, name in top_level],
        "profile": profile,
    }


def render_noop(w: Callable[[str], None], noop: dict) -> None:
    """The section "No-op rebuild, everything cached" from the stored results of the noop case."""
    s = noop["stats"]
    w("## No-op rebuild, everything cached\n")
    w(
        f"`{noop['command']}`; the index digest "
        f"{'stayed' if noop['digests_stable'] else 'did NOT stay'} the same.\n"
    )
    w(TIME_HEADER)
    row(w, "xarch build, no-op (replayed from its build record)", s["xarch_noop"])
    if "xarch_noop_unrecorded" in s:
        row(w, "xarch build, no-op without its build record (image cache)", s["xarch_noop_unrecorded"])
    row(w, "xarch --version (interpreter + CLI start-up)", s["xarch_version"])
    w("")
    w(
        f"`python -X importtime -c 'import xarch.cli'`: {noop['import_total_us'] / 1000:.0f} ms in all; "
        "self time summed by package (xarch by module), the largest:\n"
    )
    w("| module | ms |\n|---|---|")
    for us, name in noop["import_top"]:
        w(f"| {name} | {us / 1000:.0f} |")
    w("")
    w("Profile of one no-op build (cProfile, cumulative):\n\n```\n" + noop["profile"] + "\n```\n")
