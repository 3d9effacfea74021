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

    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "xarch": f"{first_line([*XARCH, '--version'])} (git {commit})",
        "python": sys.version.split()[0],
        "deflate (libdeflate)": package_version("deflate"),
        "docker client": first_line(["docker", "version", "--format", "{{.Client.Version}}"]),
        "dockerd": first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
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
    if hello and "xarch_cross_edit" in hello["stats"]:
        s = hello["stats"]
        edit, anchor = s["xarch_cross_edit"]["wall"], s["buildx_compile"]["wall"]
        targets.append(
            (
                "hello-c one-line edit rebuild ≤ 0.6 s and ≥ 2× faster than buildx's cached compile",
                f"{sec(edit)}, {anchor / edit:.1f}×",
                f"xarch cross arm64 {sec(edit)} (emulate {sec(s['xarch_emulate_edit']['wall'])}) "
                f"vs buildx compile {sec(anchor)}",
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
            targets.append(
                (
                    f"push ({name}) no slower than skopeo",
                    f"{ratio:.2f}× skopeo's speed",
                    f"xarch {sec(s[f'xarch_{kind}']['wall'])} vs skopeo {sec(s[f'skopeo_{kind}']['wall'])}",
                    ratio >= 1,
                )
            )
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

Written from the profiles above; the numbers quoted are from the run of 2026-11-23 10:17 UTC.
Rerun `scripts/bench --case …` after a change.

- **nginx warm, ≥10× buildx: NOT met (about 3.3×).** Both tools hit their caches, so this is
  start-up against start-up: buildx's warm builds take about 0.5 s + 0.5 s, xarch's cached build
  0.3 s, of which about 0.2 s is the interpreter and imports (`xarch --version` alone: 0.22 s;
  `import xarch.cli` 180 ms: pydantic + pydantic_core + annotated_types ~45 ms, xarch.recipe 18 ms,
  xarch.sources.debian 17 ms, rich 16 ms, yaml 8 ms, asyncio 8 ms pulled in by a dependency), then
  the recipe's pydantic validation (~45 ms) and reading the host's apt sources through python-debian
  (`hostapt.host_mirrors`, ~35 ms, mostly importing `debian.deb822`) although the image cache hits.
  Plan, in the lead's files: (1) `cli.py` registers commands lazily (import a command's module when
  it runs), so `build` never imports the registry/docker/rich code and `push` never imports
  pydantic/recipe/debian; (2) look the image cache up before resolving the default mirror (or read
  `/etc/apt/sources.list.d/*.sources` with a 10-line parser only when no mirror is in the recipe or
  the lock); (3) create the progress/rich console only on a terminal. That should bring a cached
  build to 0.10–0.15 s: ≥10× needs 0.10 s against buildx's 1.0 s, which is near CPython's own
  start-up plus click (~50 ms), so expect ~7–10× unless the cached path avoids click and pydantic
  entirely (a fast path in `xarch/cli.py` that checks the image cache before importing the rest).
- **push, no slower than skopeo: NOT met** (nginx 30 MB: first push 0.43 s vs 0.17 s, re-push 0.33 s
  vs 0.03 s; large 430 MB: first push 1.48 s vs 1.35 s, re-push 0.56 s vs 0.03 s). On the small image
  the push is fixed costs: ~0.2 s interpreter + imports (requests, ssl — `set_default_verify_paths`
  16 ms even for plain HTTP — click, rich), ~25 ms of regex compilation, then sequential HEADs before
  the (already concurrent) uploads; skopeo is a Go binary that starts in ~10 ms. On the large image the
  first push is within 10 % of skopeo (uploads dominate; xarch uses less CPU than skopeo). The
  re-push is where xarch loses most: it sha256-verifies every local blob before asking the registry
  (412 `hash.update` calls, 0.2 s for 430 MB), while skopeo answers from its blob-info cache and a few
  HEADs. Plan (xarch/registry/push.py, xarch/cli.py): (1) HEAD the index by digest first and stop when
  the registry already has it — the re-push becomes one request; (2) otherwise HEAD blobs concurrently
  and hash only the blobs that are uploaded, while streaming them; (3) lazy imports and no SSL context
  for plain HTTP. That puts the re-push at ~start-up (~0.15 s): still above a Go binary's 0.03 s, which
  CPython cannot match, so this target stays NOT met for tiny pushes unless the target is restated
  for images where transfer time dominates.
- **hello-c one-line edit rebuild ≤ 0.6 s and ≥ 2× buildx's cached compile: ≥ 2× met, 0.6 s
  NOT met** (run of 2026-12-01 06:07 UTC, load average ~3.5: cross 0.68 s median, walls 0.61–1.21,
  against buildx's 1.56 s; emulate 1.78 s). By hand on a quieter machine (load ~0.8, the same warm
  cache): 0.65–0.77 s through the bench's launcher (`python -m benchmarks.run_xarch`), 0.61–0.62 s
  through the installed `xarch`. The compile step itself takes 0.1 s; about half the rest is the
  interpreter and imports (`xarch.cli.build` pulls in the whole build pipeline, `xarch.build.contents`
  alone ~0.2 s under cProfile), then ~0.2 s making the stage root (stages.build). Plan: lazy imports
  on the build path (the same work as the warm no-op plan above) would bring it under 0.5 s.
- **The C program, compile only** (no target, but a loss to note). Before the package-tree cache,
  with only the downloads cached, `xarch build --strategy cross` took ~5.7 s against buildx's
  ~1.3 s with its apt layer cached, although the compile step itself is 0.15 s (table above): the
  time went to making the build stage's root again, xz-decompressing the data.tar of gcc,
  binutils, libc6-dev… (~2.7 s in `_lzma.LZMADecompressor.decompress`) and writing ~3400 files
  (`rootfs.materialize`, ~2.5 s). That plan is done (each .deb unpacked once into a cache of
  package trees; stage roots are overlayfs over a hard-link farm of it), and the edit rows above
  show it. The compile row still starts from a cache holding only downloads, so each run now also
  fills the package-tree cache: 10.1 s cross / 7.97 s emulate in the 2026-12-01 06:07 run (load
  ~3.5; not compared with the old code under the same load).
- **Layer writing** (issue 14, the streaming engine). Before: the writer held the whole tar and the
  blob in memory (989 MB peak RSS for the 318 MB layer; 1.5 GB for the 978 MiB tree, issue 14) and
  compressed on one core. Now a layer streams tar → sha256 (diff_id) → fixed 1 MiB chunks compressed
  in a thread pool (libdeflate through ctypes, which releases the GIL; `deflate.deflate_compress`
  0.9.0 holds it) → sha256 → a file in the store, and outputs copy or stream that file. **Memory: met**
  (run of 2026-12-01 02:22 UTC): `xarch build` peaks at 122 MB for the 978 MiB / 63k-file tree and
  93 MB for the 5 GiB tree; the layer writer at ~50 MB for the 300 MB tree. **Throughput ≥ 1.5× pigz:
  NOT shown.** xarch needs ~1.6–1.7× less CPU than `tar | pigz` at level 6 (5 GiB tree: 85 s against
  145 s; 978 MiB: 22 s against 33 s), but the 2 cores were shared with other work (load average 6–20),
  and under that load wall time follows how many runnable threads a tool has more than its CPU
  need: xarch was 0.66–0.72× pigz's wall on the large trees and 0.83–1.07× on the 300 MB tree. On an
  idle 2-core machine the CPU ratio would predict ~1.6×; rerun `scripts/bench --case layer,big` on a
  quiet machine to measure it. Compression itself is libdeflate's speed (measured: 1 MiB chunks
  through ctypes cost the same CPU as one whole-buffer call); the serial rest is per file (tar
  headers, stat, open), now in its own thread beside the blob hash and write. One A/B in a quieter
  minute (2026-12-01 02:53 UTC, load average ~2–3), the layer writer alone on the 978 MiB tree,
  `/usr/bin/time`: before (build_layer of af07a9b) 26.0 s wall, 22.5 s CPU, 3.2 GB peak RSS; after
  (write_layer) 19.4 s, 18.7 s CPU, 97 MB; `tar | pigz -6` 18.4 s, 30.4 s CPU, 4 MB. Even then
  two threads hashing with sha256 (no GIL) ran only 1.1× faster than one: the second core was
  mostly taken by other work, so the wall ratio against pigz reflects sharing, not the writer.
  (The zstd row of the 300 MB table was measured with one frame per 1 MiB chunk; zstd layers are
  now one frame from libzstd's own threads.)
- **Met**: nginx cold ≥10× buildx (about 21×, 46× in CPU: no QEMU, no maintainer scripts, packages unpacked
  in Python), image size (0.13× of the Debian-based buildx image: no apt, dpkg, perl-base, docs of
  the base system), and the warm no-op rebuild (~0.30 s, thanks to the lead's image cache).
"""
