"""BENCHMARKS.md: the stored results (a JSON comment in the file), the targets, every section."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform as pyplatform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.big import render_big
from benchmarks.builds import STEP_STRATEGIES, render_hello, render_nginx
from benchmarks.layers import render_layer
from benchmarks.markdown import mb, met, sec
from benchmarks.measuring import REPO, XARCH
from benchmarks.noop import render_noop
from benchmarks.pushing import render_push

REPORT = REPO / "BENCHMARKS.md"
DATA_MARK = "<!-- bench-data"  # the stored results: JSON from here to the next line "-->"
DATA_END = "\n-->"

# Measured by hand (issue 13: verify as reprotest, caching by what a stage reads); written
# as it is into the report.
STAGE_CACHE_AND_VERIFY = """\
## Verify, stage caching (issue 13; measured by another helper, not by scripts/bench)

Hand-timed on this shared 2-core machine while other engineers' tests ran (load average 9 to
18, so a clean build took 2-5× its quiet time); the old and the new code ran in alternation,
each a clean build (`xarch build -q --no-cache`) and then `xarch verify` (every variation, as
root, so none is skipped), under the same load. Command:
`xarch build -q --no-cache -f examples/X/xarch.yaml -o oci:OUT; xarch verify -f examples/X/xarch.yaml --json`.

| example | clean build | verify before (one rebuild per variation, 11 builds) | verify after (control + every variation at once) | after / clean build |
|---|---|---|---|---|
| hello-c (cross arm64 + native amd64) | 140.5 s / 142.7 s | 1181.4 s (8.4×) | 174.2 s | 1.2× |
| nginx (packages only) | 14.8 s / 23.4 s | 151.8 s (10.3×) | 30.1 s | 1.3× |

An earlier pair under lighter load (load 2 to 8): hello-c clean 29.8 s, verify before 246.5 s
(8.3×); nginx clean 5.0 s, verify before 76.9 s (15×). After: the two builds run side by side,
so verify costs about one build plus the varied build's extra work (one CPU, a fresh cache
that downloads every `.deb` again, another user); a difference adds about log2(variations)
rounds of two builds to name the variation (tests/test_verify_bisect.py).

A one-line edit of `examples/flask-pip/app/app.py` (tests/test_examples_projects.py, load
about 16): both platforms rebuilt in 77.6 s, and `pip install` ran in neither (`deps step 1/1:
cached`; it ran 2 min 47 s natively and under QEMU the first time). The packages and stages
layers kept their digests; only the 414-byte files layer changed. What the 77.6 s is (cProfile,
113 s under the same load): 61 s unpacking the `.deb`s of the image and of the deps stage
(40 s of it xz), 14 s writing the stage root to disk, 15 s writing and compressing layers.

`xarch verify` of `examples/dockerfile` (load about 7): 13.6 s against a clean build of 8.4 s
(1.6×), all identical. Before its Dockerfile said `COPY --chmod=0755`, the same command took
49.2 s against 13.1 s: the every-variation build differed, and bisection (three more rounds)
named the umask variation (`bin/busybox: mode: 0755 → 0700`, COPY keeps the checkout's mode);
`user` was "not applicable" (nobody cannot use the Docker socket).
"""  # noqa: E501 (a table row of the measured text)


def package_version(name: str) -> str:
    """The installed version of the Python distribution NAME (this interpreter's), or "not installed"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """The version of every tool the report compares, by its name in the report's table."""
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    def deb(package: str) -> str:
        # dpkg-query says "no packages found" on stderr for a package that is not installed
        query = ["dpkg-query", "-W", "-f", "${Version}", package]
        if subprocess.run(query, capture_output=True).returncode:
            return "not installed"
        return first_line(query)

    def dockerd() -> str:
        # The daemon answers with its version when it runs; else the installed binary says its own.
        running = first_line(["docker", "version", "--format", "{{.Server.Version}}"])
        if running[:1].isdigit():
            return running
        installed = first_line(["dockerd", "--version"])
        return installed if installed == "not installed" else f"{installed} (not running)"

    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "xarch": f"{first_line([*XARCH, '--version'])} (git {commit})",
        "python": sys.version.split()[0],
        "deflate (libdeflate)": package_version("deflate"),
        "docker client": first_line(["docker", "version", "--format", "{{.Client.Version}}"]),
        "dockerd": dockerd(),
        "buildx": first_line(["docker", "buildx", "version"]),
        "containerd": deb("containerd"),
        "runc": deb("runc"),
        "qemu-user-static": deb("qemu-user-static"),
        "skopeo": first_line(["skopeo", "--version"]),
        "docker-registry": deb("docker-registry"),
        "mmdebstrap": first_line(["mmdebstrap", "--version"]),
        "GNU tar": first_line(["tar", "--version"]),
        "gzip": first_line(["gzip", "--version"]),
        "pigz": first_line(["pigz", "--version"]),
        "gcc-aarch64-linux-gnu": deb("gcc-aarch64-linux-gnu"),
        "kernel": pyplatform.release(),
    }


def machine() -> dict[str, str]:
    """Cores, CPU model, memory (GiB) and Debian version of this machine, as the report shows them."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model[1] if model else pyplatform.machine(),
        "memory": f"{int(memory[1]) / 1024 / 1024:.1f} GiB" if memory else "?",
        "os": " ".join(Path("/etc/debian_version").read_text().split())
        if Path("/etc/debian_version").exists()
        else "",
    }


def read_report(path: Path) -> tuple[dict[str, Any], str]:
    """The stored results of a report PATH (empty if PATH or its data comment is missing) and the
    text after the data comment: sections written by hand, kept when the file is written again.
    Raises SystemExit with one line naming PATH if the stored results are not JSON."""
    if not path.exists():
        return {}, ""
    text = path.read_text()
    if DATA_MARK not in text:
        return {}, ""
    stored = text.split(DATA_MARK, 1)[1]
    end = stored.find(DATA_END)  # json.dumps(indent=1) never starts a line with "-->"
    if end < 0:
        raise SystemExit(f"bench: {path}: the comment {DATA_MARK!r} has no end line '-->'")
    try:
        data = json.loads(stored[:end])
    except json.JSONDecodeError as error:
        raise SystemExit(f"bench: {path}: the stored results are not JSON: {error}") from None
    return data, stored[end + len(DATA_END) :]


def write_report(path: Path, data: dict[str, Any], hand_written: str) -> None:
    """Write the report of DATA to PATH, then HAND_WRITTEN as it is (read_report's second value).
    Written to a temporary file beside PATH and renamed, so an interrupted write leaves PATH whole."""
    text = render(data)
    if hand_written.strip():
        text = text.rstrip("\n") + hand_written
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def render(data: dict[str, Any]) -> str:
    """BENCHMARKS.md for the stored results DATA (a section per case present), ending in DATA as a
    JSON comment that read_report reads back."""
    out: list[str] = []
    w = out.append
    w("# Benchmarks: xarch side by side with docker buildx, skopeo and GNU tar\n")
    w(
        "Written by `scripts/bench` (rerun one case: `scripts/bench --case noop`; rewrite this file from "
        "the stored results: `scripts/bench --report`). Medians of several runs, each tool run in "
        "alternation with the other in the same loop. These are measurements, not tests.\n"
    )
    meta: dict[str, Any] = data.get("meta", {})
    if meta:
        w("## Machine and versions\n")
        m = meta["machine"]
        w(f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory']} RAM, Debian {m['os']}")
        w(
            "- other work (tests of other engineers) was running on this shared 2-core machine at the same "
            "time, so treat differences under ~10 % as noise; each case started at:"
        )
        for case, started in meta.get("when", {}).items():
            w(f"  - {case}: {started}")
        w("")
        w("| tool | version |\n|---|---|")
        for tool, version in meta["versions"].items():
            w(f"| {tool} | {version} |")
        w("")
    targets: list[tuple[str, str, str, bool]] = []
    nginx: dict[str, Any] = data.get("nginx", {})
    hello: dict[str, Any] = data.get("hello-c", {})
    layer: dict[str, Any] = data.get("layer", {})
    push: dict[str, Any] = data.get("push", {})
    noop: dict[str, Any] = data.get("noop", {})
    big: dict[str, Any] = data.get("big", {})
    if nginx:
        s = nginx["stats"]
        for kind in ("cold", "warm"):
            buildx = s[f"buildx_amd64_{kind}"]["wall"] + s[f"buildx_arm64_{kind}"]["wall"]
            ratio = buildx / s[f"xarch_{kind}"]["wall"]
            targets.append(
                (
                    f"nginx amd64+arm64, {kind}: ≥10× faster than buildx with QEMU",
                    f"{ratio:.1f}×",
                    f"xarch {sec(s[f'xarch_{kind}']['wall'])} vs buildx {sec(buildx)}",
                    ratio >= 10,
                )
            )
        if "xarch_warm_served" in s:
            local, served = s["xarch_warm"]["wall"], s["xarch_warm_served"]["wall"]
            targets.append(
                (
                    "nginx amd64+arm64, warm: ≤ 0.15 s",
                    f"{sec(local)}; served {sec(served)}",
                    f"xarch {sec(local)}; with `xarch serve` running {sec(served)}",
                    served <= 0.15,
                )
            )
        x = nginx["xarch"][0]["platforms"]
        bx = {arch: nginx["buildx"][arch][0] for arch in ("amd64", "arm64")}
        worst = max(x[a]["compressed"] / bx[a]["compressed"] for a in ("amd64", "arm64"))
        targets.append(
            (
                "image size ≤ 1/5 of the buildx Debian-based image (compressed)",
                f"{worst:.2f}× (worst platform)",
                ", ".join(f"{a}: {mb(x[a]['compressed'])} vs {mb(bx[a]['compressed'])}" for a in x),
                worst <= 0.2,
            )
        )
    edit_rows = (
        ("xarch_cross_edit", "hello-c one-line edit rebuild ≤ 0.6 s and ≥ 2× faster than buildx's cached "
                             "compile"),
        ("xarch_cross_edit_served", "the same, with `xarch serve` running (docs/server.md)"),
    )
    for key, name in edit_rows:
        if not (hello and key in hello["stats"]):  # stored before that row existed
            continue
        s = hello["stats"]
        edit, anchor = s[key]["wall"], s["buildx_compile"]["wall"]
        how = ", served," if key.endswith("served") else f" (emulate {sec(s['xarch_emulate_edit']['wall'])})"
        targets.append(
            (
                name,
                f"{sec(edit)}, {anchor / edit:.1f}×",
                f"xarch cross arm64 {sec(edit)}{how} vs buildx compile {sec(anchor)}",
                edit <= 0.6 and anchor / edit >= 2,
            )
        )
    if noop:
        wall = noop["stats"]["xarch_noop"]["wall"]
        targets.append(("warm no-op rebuild < 0.5 s", sec(wall), noop["command"].split("  ")[0], wall < 0.5))
    if layer:
        s = layer["stats"]
        ratio = s["tar_gzip"]["wall"] / s["xarch"]["wall"]
        targets.append(
            (
                "layer writing ≥ GNU tar + gzip speed",
                f"{ratio:.2f}× tar+gzip's speed",
                f"xarch {sec(s['xarch']['wall'])} vs tar\\|gzip {sec(s['tar_gzip']['wall'])}",
                ratio >= 1,
            )
        )
    if layer and "tar_pigz" in layer["stats"]:
        s = layer["stats"]
        ratio = s["tar_pigz"]["wall"] / s["xarch"]["wall"]
        targets.append(
            (
                "layer writing (300 MB tree) ≥ 1.5× tar \\| pigz at level 6",
                f"{ratio:.2f}× pigz's speed",
                f"xarch {sec(s['xarch']['wall'])} vs tar\\|pigz {sec(s['tar_pigz']['wall'])}",
                ratio >= 1.5,
            )
        )
    elif layer:  # a target whose anchor was not run is shown as missed, never left out
        targets.append(("layer writing (300 MB tree) ≥ 1.5× tar \\| pigz at level 6",
                        "not measured: pigz was not installed", "apt-get install pigz; then --case layer",
                        False))
    for result in big.values():
        s = result["stats"]
        for tool in ("xarch_build", "xarch_layer"):
            rss = s[tool]["peak_rss_mb"]
            targets.append(
                (
                    f"peak RSS of {tool.replace('_', ' ')}, {mb(result['bytes'])} tree ≤ 300 MB",
                    f"{rss:.0f} MB",
                    f"tar\\|pigz {s['tar_pigz']['peak_rss_mb']:.0f} MB",
                    rss <= 300,
                )
            )
        ratio = s["tar_pigz"]["wall"] / s["xarch_layer"]["wall"]
        targets.append(
            (
                f"layer writing ({mb(result['bytes'])} tree) ≥ 1.5× tar \\| pigz at level 6",
                f"{ratio:.2f}× pigz's speed",
                f"xarch {sec(s['xarch_layer']['wall'])} (whole build {sec(s['xarch_build']['wall'])}) "
                f"vs tar\\|pigz {sec(s['tar_pigz']['wall'])}",
                ratio >= 1.5,
            )
        )
    if push:
        s = push["stats"]
        for kind in ("first", "again", "first_large", "again_large"):
            if f"xarch_{kind}" not in s:
                continue
            ratio = s[f"skopeo_{kind}"]["wall"] / s[f"xarch_{kind}"]["wall"]
            name = {
                "first": "nginx, first push",
                "again": "nginx, re-push",
                "first_large": "large, first push",
                "again_large": "large, re-push",
            }[kind]
            both = f"xarch {sec(s[f'xarch_{kind}']['wall'])} vs skopeo {sec(s[f'skopeo_{kind}']['wall'])}"
            targets.append((f"push ({name}) no slower than skopeo", f"{ratio:.2f}× skopeo's speed", both,
                            ratio >= 1))
            if kind.startswith("again"):  # issue 14: an unchanged re-push within 3× skopeo's time
                times = s[f"xarch_{kind}"]["wall"] / s[f"skopeo_{kind}"]["wall"]
                targets.append((f"push ({name}) ≤ 3× skopeo's time", f"{times:.1f}× skopeo's time", both,
                                times <= 3))
    if targets:
        w("## Targets\n")
        w("| target | result | numbers | status |\n|---|---|---|---|")
        for name, result, numbers, ok in targets:
            w(f"| {name} | {result} | {numbers} | {met(ok)} |")
        w("")
    if nginx:
        render_nginx(w, nginx)
    if hello:
        render_hello(w, hello)
    w("### Step strategies alone (scripts/bench-step-strategies, measured by another helper, median of 5)\n")
    w("The compile step only (namespace set-up included, no package install, no image writing).\n")
    w(
        "| source | native amd64 (chroot) | cross arm64 | emulated arm64 (QEMU) | emulated / cross |\n"
        "|---|---|---|---|---|"
    )
    for name, native, cross, emulated in STEP_STRATEGIES:
        w(f"| {name} | {native:.2f} s | {cross:.2f} s | {emulated:.2f} s | {emulated / cross:.1f}× |")
    w("")
    if layer:
        render_layer(w, layer)
    if push:
        render_push(w, push)
    if noop:
        render_noop(w, noop)
    w(STAGE_CACHE_AND_VERIFY)
    if big:
        render_big(w, big)
    w(PLANS)
    w("## Reproduce\n")
    w(
        "```sh\nbash scripts/setup-host  # dockerd, buildx, qemu binfmt, docker-registry, skopeo, mmdebstrap\n"  # noqa: E501
        "apt-get install -y pigz arch-test\n"
        "scripts/bench-base-image       # xarch-bench/debian:bookworm-{amd64,arm64}\n"
        "scripts/bench                  # all cases; or --case nginx,hello-c,layer,push,noop\n```\n"
    )
    w(f"{DATA_MARK}\n{json.dumps(data, indent=1, sort_keys=True)}{DATA_END}")
    return "\n".join(out) + "\n"


PLANS = """## Where targets are missed: where the time goes, and a plan

Written on 2026-12-02 from the runs above; rerun `scripts/bench --case …` after a change.
Compare rows of one run: this machine's speed drifts through the day, and from one boot to
the next (the rows above from 03:39 on ran on a machine about 1.8× as fast as the same rows
at 00:49 the same night: buildx's cached compile took 1.76 s against 3.66 s).

- **hello-c one-line edit ≤ 0.6 s: met, with and without `xarch serve`, in this run** (0.50 s
  without, 0.49–0.54 s over 9 edits, 3.5× buildx's cached compile; 0.22 s served, 8.1×). On
  the slower machine of 00:49 it was 0.88 s without the server and 0.35 s with it, so without
  a server the target holds only on a fast machine. Without a server, most of the edit is
  CPython starting and importing the libraries xarch is built on (py-spy and `-X importtime`):
  pydantic ~80–100 ms with its submodules, plumbum ~60 ms (it loads `urllib.request` and
  `http.client`), click ~40 ms, PyYAML, pathspec and pyelftools ~15–20 ms each, xarch's own
  modules ~0.1 s; the compile step is ~0.11 s and the stage-root check ~25 ms. `xarch serve`
  (docs/server.md) keeps those modules loaded and forks a process per build, as Bazel's server
  and Gradle's daemon do: what is left is the build itself. The server is opt-in; a client
  unlike it (user, namespaces, limits, loader variables, interpreter, code) runs the build
  itself, so the row without it is still the default case.
- **nginx warm ≤ 0.15 s: met** (0.13 s replayed from the build record; 0.09 s served). In
  slower hours the local replay measured 0.16–0.20 s by hand; the served one stays near 0.1 s
  because it does not start an interpreter.
- **Push no slower than skopeo (first push of nginx; re-push): NOT met**, close served. A first
  push: 0.51 s local, 0.30 s served, skopeo 0.26 s; a re-push: 0.10 s local, 0.07 s served,
  skopeo 0.05 s (the re-push is within issue 14's 3× of skopeo either way). skopeo is a Go binary
  that starts in ~10 ms; a served push still starts a small Python client (~40 ms) and a fork.
- **Met**: nginx cold ≥10× buildx, image size, the warm no-op < 0.5 s (0.13 s replayed), layer
  writing ≥ 1.5× pigz on the 300 MB tree (1.61×, this run) and on the 978 MiB and 5 GiB trees
  (1.52× and 1.76×, measured 2026-12-01 on the slower machine and not again), memory of large
  trees (≤ 122 MB).
"""
