"""Rows of whole image builds: nginx (cold, rebuild, warm) and the C program (cold, compile).

Each against docker buildx with QEMU for arm64, run in alternation in the same loop.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.images import (
    buildx_cmd,
    buildx_prune,
    context_dir,
    docker_image_facts,
    docker_rmi,
    ensure_base_images,
    layout_facts,
)
from benchmarks.markdown import CPU_NOTE, TIME_HEADER, commands_block, mb, row
from benchmarks.measuring import (
    REPO,
    WORK,
    XARCH,
    Sample,
    build_server,
    fresh,
    loadavg,
    log,
    measure,
    profile_xarch,
    run,
    shown,
    stats,
)

NGINX_DOCKERFILE = """\
ARG TARGETARCH
FROM xarch-bench/debian:bookworm-${TARGETARCH}
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light ca-certificates
"""
HELLO_DOCKERFILE = """\
ARG TARGETARCH
FROM xarch-bench/debian:bookworm-${TARGETARCH}
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev
COPY hello.c /src/hello.c
ARG BUST=0
RUN cd /src && echo "$BUST" >/dev/null && gcc -static -O2 -o /out-hello hello.c
"""

# The strategy timings another helper measured with scripts/bench-step-strategies (median of 5).
STEP_STRATEGIES = [
    ("hello.c", 0.16, 0.15, 1.49),
    ("big.c (400 functions, -O2)", 2.00, 1.66, 19.5),
]


def case_nginx(runs: int) -> dict[str, object]:
    ensure_base_images()
    context = context_dir("nginx", NGINX_DOCKERFILE)
    recipe = REPO / "examples/nginx/xarch.yaml"
    warm_cache = WORK / "cache-nginx-warm"
    out_root = WORK / "out-nginx"
    samples: dict[str, list[Sample]] = {
        k: []
        for k in (
            "xarch_cold",
            "xarch_rebuild",
            "xarch_warm",
            "xarch_warm_served",
            "xarch_warm_unrecorded",
            "buildx_amd64_cold",
            "buildx_arm64_cold",
            "buildx_amd64_warm",
            "buildx_arm64_warm",
        )
    }
    xarch_layouts: list[dict[str, object]] = []
    buildx_images: dict[str, list[dict[str, object]]] = {"amd64": [], "arm64": []}
    commands: dict[str, str] = {}
    for number in range(runs):
        log(f"nginx run {number + 1}/{runs} (load {loadavg()})")
        # xarch cold: an empty download cache, a new output.
        cold_cache = fresh(WORK / "cache-nginx-cold")
        output = fresh(out_root) / f"cold-{number}"
        cmd = [*XARCH, "build", "-q", "-f", str(recipe), "-o", f"oci:{output}"]
        samples["xarch_cold"].append(measure(cmd, env={"XARCH_CACHE": str(cold_cache)}))
        commands["xarch cold"] = f"XARCH_CACHE=$(mktemp -d) {shown(cmd)}"
        xarch_layouts.append(layout_facts(output))
        if number == 0:
            shutil.rmtree(warm_cache, ignore_errors=True)
            shutil.copytree(cold_cache, warm_cache)
            # One unmeasured warm build with this cache: the cold run's record is keyed by its own
            # XARCH_CACHE, so this one records the build under the warm cache's key.
            prime = [*XARCH, "build", "-q", "-f", str(recipe), "-o", f"oci:{out_root / 'warm-prime'}"]
            measure(prime, env={"XARCH_CACHE": str(warm_cache)})
        # xarch rebuild: downloads cached, every image built again (--no-cache skips the image cache).
        output = out_root / f"rebuild-{number}"
        cmd = [*XARCH, "build", "-q", "--no-cache", "-f", str(recipe), "-o", f"oci:{output}"]
        samples["xarch_rebuild"].append(measure(cmd, env={"XARCH_CACHE": str(warm_cache)}))
        commands["xarch rebuild"] = f"XARCH_CACHE=<cache of a cold run> {shown(cmd)}"
        # xarch warm: everything cached, like buildx's warm build below; a new output folder.
        output = out_root / f"warm-{number}"
        cmd = [*XARCH, "build", "-q", "-f", str(recipe), "-o", f"oci:{output}"]
        samples["xarch_warm"].append(measure(cmd, env={"XARCH_CACHE": str(warm_cache)}))
        commands["xarch warm"] = f"XARCH_CACHE=<cache of a cold run> {shown(cmd)}"
        # the same, handed to a build server (`xarch serve`, started before and not timed)
        output = out_root / f"warm-served-{number}"
        cmd = [*XARCH, "build", "-q", "-f", str(recipe), "-o", f"oci:{output}"]
        with build_server(warm_cache, WORK / "serve-nginx.log", expected=1):
            samples["xarch_warm_served"].append(measure(cmd, env={"XARCH_CACHE": str(warm_cache)}))
        commands["xarch warm, served"] = (f"XARCH_CACHE=<cache of a cold run> xarch serve & "
                                          f"XARCH_CACHE=<…> {shown(cmd)}")
        # the same without its build record (removed first): the image cache alone, the recipe loaded
        shutil.rmtree(warm_cache / "records", ignore_errors=True)
        output = out_root / f"warm-unrecorded-{number}"
        cmd = [*XARCH, "build", "-q", "-f", str(recipe), "-o", f"oci:{output}"]
        samples["xarch_warm_unrecorded"].append(measure(cmd, env={"XARCH_CACHE": str(warm_cache)}))
        commands["xarch warm, no build record"] = f"rm -r <cache>/records; XARCH_CACHE=<…> {shown(cmd)}"
        for arch in ("amd64", "arm64"):
            # buildx cold: no build cache, --no-cache, the result image removed; then warm: its cache.
            tag = f"xarch-bench/nginx-buildx:{arch}"
            buildx_prune()
            docker_rmi(tag)
            cmd = buildx_cmd(context, arch, tag, "--no-cache")
            samples[f"buildx_{arch}_cold"].append(measure(cmd, docker=True))
            commands[f"buildx {arch} cold"] = "docker buildx prune -af && " + shown(cmd)
            buildx_images[arch].append(docker_image_facts(tag, sizes=number == 0))
            cmd = buildx_cmd(context, arch, tag)
            samples[f"buildx_{arch}_warm"].append(measure(cmd, docker=True))
            commands[f"buildx {arch} warm"] = shown(cmd)
    log("nginx: profiling one xarch rebuild (downloads cached, --no-cache)")
    profile = profile_xarch(
        ["build", "-q", "--no-cache", "-f", str(recipe), "-o", f"oci:{out_root / 'profile'}"],
        env={"XARCH_CACHE": str(warm_cache)},
    )
    return {
        "stats": {k: stats(v) for k, v in samples.items()},
        "xarch": xarch_layouts,
        "buildx": buildx_images,
        "commands": commands,
        "dockerfile": NGINX_DOCKERFILE,
        "profile_warm": profile,
    }


EDITS_PER_RUN = 3


def case_hello_c(runs: int) -> dict[str, object]:
    ensure_base_images()
    recipe = REPO / "examples/hello-c/xarch.yaml"
    context = context_dir("hello-c", HELLO_DOCKERFILE, {"hello.c": REPO / "examples/hello-c/hello.c"})
    downloads = WORK / "cache-hello-downloads"
    samples: dict[str, list[Sample]] = {
        k: []
        for k in (
            "xarch_cross_cold",
            "xarch_emulate_cold",
            "buildx_cold",
            "xarch_cross_compile",
            "xarch_emulate_compile",
            "buildx_compile",
            "xarch_cross_edit",
            "xarch_emulate_edit",
            "xarch_cross_edit_served",
        )
    }
    commands: dict[str, str] = {}
    tag = "xarch-bench/hello-buildx:arm64"
    # The edit rows (issue 14): a copy of the example (the checkout's is never edited), one
    # cache per strategy kept warm by every run, hello.c one comment line longer each run.
    edit_copy = fresh(WORK / "hello-edit") / "hello-c"
    shutil.copytree(REPO / "examples/hello-c", edit_copy)
    edit_caches = {s: WORK / f"cache-hello-edit-{s}" for s in ("cross", "emulate")}
    for edit_cache in edit_caches.values():
        shutil.rmtree(edit_cache, ignore_errors=True)

    def xarch_cmd(strategy: str, recipe_file: Path, output: Path) -> list[str]:
        return [
            *XARCH,
            "build",
            "-q",
            "-f",
            str(recipe_file),
            "--platform",
            "arm64",
            "--strategy",
            strategy,
            "-o",
            f"oci:{output}",
        ]

    def xarch_run(strategy: str, cache: Path, label: str) -> None:
        cmd = xarch_cmd(strategy, recipe, fresh(WORK / "out-hello") / strategy)
        samples[label].append(measure(cmd, env={"XARCH_CACHE": str(cache)}))
        prefix = (
            "$(mktemp -d)" if label.endswith("cold") else "<a new folder holding only sha256/ of a cold run>"
        )
        commands[label] = f"XARCH_CACHE={prefix} {shown(cmd)}"

    for number in range(runs):
        log(f"hello-c run {number + 1}/{runs} (load {loadavg()})")
        for strategy in ("cross", "emulate"):
            cache = fresh(WORK / "cache-hello-cold")
            xarch_run(strategy, cache, f"xarch_{strategy}_cold")
            if not (downloads / "sha256").exists() or number == 0:
                # keep the downloads of both strategies (emulate needs more packages)
                (downloads / "sha256").mkdir(parents=True, exist_ok=True)
                run(["cp", "-al", "--no-clobber", f"{cache}/sha256/.", f"{downloads}/sha256/"])
            if number == 0:
                # the edit rows' cache: this cold run's downloads, then one unmeasured build of the
                # copy (package trees unpacked, step run); every edit run after it reuses the cache
                edit_cache = fresh(edit_caches[strategy])
                run(["cp", "-al", f"{cache}/sha256", f"{edit_cache}/sha256"])
                output = fresh(WORK / "out-hello") / "edit-warm-up"
                cmd = xarch_cmd(strategy, edit_copy / "xarch.yaml", output)
                run(cmd, env={**os.environ, "XARCH_CACHE": str(edit_cache)})
        buildx_prune()
        docker_rmi(tag)
        cmd = buildx_cmd(context, "arm64", tag, "--no-cache")
        samples["buildx_cold"].append(measure(cmd, docker=True))
        commands["buildx_cold"] = "docker buildx prune -af && " + shown(cmd)
        # the compile alone: downloads cached but no step cache / apt layer cached, compile step forced
        for strategy in ("cross", "emulate"):
            cache = fresh(WORK / "cache-hello-compile")
            run(["cp", "-al", f"{downloads}/sha256", f"{cache}/sha256"])
            xarch_run(strategy, cache, f"xarch_{strategy}_compile")
        bust = str(time.time_ns())
        cmd = buildx_cmd(context, "arm64", tag, "--build-arg", f"BUST={bust}")
        samples["buildx_compile"].append(measure(cmd, docker=True))
        commands["buildx_compile"] = shown(cmd).replace(bust, "$(date +%s%N)")
        # the edit: one comment line more in the copy's hello.c, rebuilt with the warm cache;
        # EDITS_PER_RUN of them per run (an edit takes well under a second, and this machine's
        # speed drifts by a third from one minute to the next: more samples, a steadier median)
        for strategy in ("cross", "emulate"):
            for edit in range(EDITS_PER_RUN):
                with (edit_copy / "hello.c").open("a") as source:
                    source.write(f"/* edit {number} {edit} {strategy} {time.time_ns()} */\n")
                cmd = xarch_cmd(strategy, edit_copy / "xarch.yaml", fresh(WORK / "out-hello") / strategy)
                samples[f"xarch_{strategy}_edit"].append(
                    measure(cmd, env={"XARCH_CACHE": str(edit_caches[strategy])})
                )
            commands[f"xarch_{strategy}_edit"] = (
                f"echo '/* edit N */' >>{edit_copy}/hello.c && "
                f"XARCH_CACHE=<downloads of a cold run + one build of the copy> {shown(cmd)}"
            )
        # the cross edit again, handed to a build server (`xarch serve`, started before, not timed)
        with build_server(edit_caches["cross"], WORK / "serve-hello.log", expected=EDITS_PER_RUN):
            for edit in range(EDITS_PER_RUN):
                with (edit_copy / "hello.c").open("a") as source:
                    source.write(f"/* served edit {number} {edit} {time.time_ns()} */\n")
                cmd = xarch_cmd("cross", edit_copy / "xarch.yaml", fresh(WORK / "out-hello") / "cross")
                samples["xarch_cross_edit_served"].append(
                    measure(cmd, env={"XARCH_CACHE": str(edit_caches["cross"])})
                )
        commands["xarch_cross_edit_served"] = (
            "XARCH_CACHE=<the same> xarch serve & " + commands["xarch_cross_edit"]
        )
    log("hello-c: profiling one xarch cross build (downloads cached, no step cache)")
    cache = fresh(WORK / "cache-hello-compile")
    run(["cp", "-al", f"{downloads}/sha256", f"{cache}/sha256"])
    output = fresh(WORK / "out-hello") / "profile"
    profile = profile_xarch(
        [
            "build",
            "-q",
            "-f",
            str(recipe),
            "--platform",
            "arm64",
            "--strategy",
            "cross",
            "-o",
            f"oci:{output}",
        ],
        env={"XARCH_CACHE": str(cache)},
    )
    return {
        "stats": {k: stats(v) for k, v in samples.items()},
        "profile": profile,
        "commands": commands,
        "dockerfile": HELLO_DOCKERFILE,
    }


def render_nginx(w: Callable[[str], None], nginx: dict) -> None:
    s = nginx["stats"]
    w("## nginx-light + ca-certificates for amd64 and arm64\n")
    w(
        "xarch builds both platforms in one command from pinned Debian packages (unpacked in Python, no "
        "QEMU). buildx builds the Dockerfile below once per platform (the Debian 12 dockerd's builder "
        "cannot export a multi-platform image), arm64 under QEMU; its base is `scripts/bench-base-image` "
        "(mmdebstrap --variant=minbase bookworm with the merged-usr hook, the way debian:bookworm is made). "
        "`--build-arg TARGETARCH=…` is passed explicitly: the BuildKit inside Debian 12's dockerd leaves "
        "the automatic TARGETARCH empty before `FROM` and would then try to pull from Docker Hub.\n"
    )
    w("```Dockerfile\n" + nginx["dockerfile"] + "```\n")
    w(
        "*Cold*: xarch with an empty `XARCH_CACHE`; buildx after `docker buildx prune -af` with "
        "`--no-cache` (apt downloads everything again inside the build). *Warm*: the same build again with "
        "every cache of the cold run: xarch's build record is replayed (nothing it read changed; "
        "docs/design.md, \"Caches\"), buildx's build cache hits every step; *warm without its build "
        "record*: the record removed first, so the recipe and lock are loaded and the image cache hits. "
        "*Rebuild* (xarch only): the download cache of a cold run but `--no-cache`, so every package is "
        "unpacked and every layer written and compressed again — the cost of a real change.\n"
    )
    w(TIME_HEADER)
    for kind in ("cold", "warm"):
        if kind == "warm" and "xarch_rebuild" in s:
            row(w, "xarch, amd64+arm64, rebuild (downloads cached, --no-cache)", s["xarch_rebuild"])
        row(w, f"xarch, amd64+arm64, {kind}", s[f"xarch_{kind}"])
        if kind == "warm" and "xarch_warm_served" in s:
            row(w, "xarch, amd64+arm64, warm, served by `xarch serve`", s["xarch_warm_served"])
        if kind == "warm" and "xarch_warm_unrecorded" in s:
            row(w, "xarch, amd64+arm64, warm without its build record", s["xarch_warm_unrecorded"])
        for arch in ("amd64", "arm64"):
            row(w, f"buildx linux/{arch}, {kind}", s[f"buildx_{arch}_{kind}"])
        both = s[f"buildx_amd64_{kind}"]["wall"] + s[f"buildx_arm64_{kind}"]["wall"]
        cpu_both = s[f"buildx_amd64_{kind}"]["total_cpu"] + s[f"buildx_arm64_{kind}"]["total_cpu"]
        w(
            f"| **buildx both / xarch ({kind})** | **{both / s[f'xarch_{kind}']['wall']:.1f}×** | | | "
            f"{cpu_both / max(s[f'xarch_{kind}']['total_cpu'], 1e-9):.1f}× | | | |"
        )
        if kind == "warm" and "xarch_rebuild" in s:
            w(
                f"| buildx both, warm / xarch rebuild | {both / s['xarch_rebuild']['wall']:.1f}× | | | "
                f"{cpu_both / max(s['xarch_rebuild']['total_cpu'], 1e-9):.1f}× | | | |"
            )
    w("")
    w(CPU_NOTE)
    w("### Images\n")
    w(
        "| image | compressed (sum of layers) | uncompressed | layers | same digests in every run? |\n"
        "|---|---|---|---|---|"
    )
    x_runs = nginx["xarch"]
    same_x = len({json.dumps(r) for r in x_runs}) == 1
    for arch, facts in x_runs[0]["platforms"].items():
        w(
            f"| xarch {arch} | {mb(facts['compressed'])} | {mb(facts['uncompressed'])} | {facts['layers']} | "
            f"{'yes' if same_x else 'NO'}: manifest {facts['digest'][:19]}… in {len(x_runs)} cold builds |"
        )
    for arch, images in nginx["buildx"].items():
        ids = {i["id"] for i in images}
        diffs = {tuple(i["diff_ids"]) for i in images}
        first = images[0]
        verdict = (
            "yes"
            if len(ids) == 1
            else f"no: {len(ids)} image IDs, "
            f"{len(diffs)} different layer diff_id lists in {len(images)} cold builds"
        )
        w(
            f"| buildx {arch} (base + RUN layer) | {mb(first['compressed'])} | {mb(first['uncompressed'])} | "
            f"{first['layers']} | {verdict} |"
        )
    w("")
    w(
        "xarch: sizes from the OCI layout (compressed = the gzip layer blobs, uncompressed = their tar "
        "streams); digests compared: each platform's manifest digest and the index digest. buildx: the image "
        "loaded with `--load`; layers from `docker save` (uncompressed = the layer tars, compressed = each "
        "gzipped at level 6 as a push would); digests compared: the image ID (config digest) and the "
        "RootFS layer diff_ids from `docker image inspect`.\n"
    )
    w(
        "Ratio of sizes (xarch / buildx), compressed: "
        + ", ".join(
            f"{arch} {x_runs[0]['platforms'][arch]['compressed'] / nginx['buildx'][arch][0]['compressed']:.2f}"  # noqa: E501
            for arch in ("amd64", "arm64")
        )
        + "; uncompressed: "
        + ", ".join(
            f"{arch} {x_runs[0]['platforms'][arch]['uncompressed'] / nginx['buildx'][arch][0]['uncompressed']:.2f}"  # noqa: E501
            for arch in ("amd64", "arm64")
        )
        + ".\n"
    )
    w(commands_block(nginx["commands"]))
    w(
        "Profile of one xarch rebuild, downloads cached, --no-cache (cProfile, cumulative):\n\n```\n"
        + nginx["profile_warm"]
        + "\n```\n"
    )


def render_hello(w: Callable[[str], None], hello: dict) -> None:
    s = hello["stats"]
    w("## A C program compiled for arm64 (examples/hello-c)\n")
    w(
        "*Cold*: xarch with an empty `XARCH_CACHE` (downloads gcc and friends, `emulate` also builds an "
        "arm64 root of the locked packages), buildx after `docker buildx prune -af` with `--no-cache` "
        "(apt-get install gcc libc6-dev under QEMU, then the compile under QEMU). *Compile*: the "
        "downloads cached but no step cache (xarch), the apt layer cached and the compile step forced "
        "with a new `--build-arg BUST` (buildx). *Edit* (xarch only; issue 14's case): a copy of "
        "the example built once, then three times a run one comment line appended to its `hello.c` "
        "and the image built again with that warm `XARCH_CACHE` (package trees and the unchanged steps' "
        "inputs cached, the compile step re-run); its anchor is buildx's *compile* row, measured in "
        "the same loop.\n"
    )
    w("```Dockerfile\n" + hello["dockerfile"] + "```\n")
    w(TIME_HEADER)
    for kind in ("cold", "compile"):
        row(w, f"xarch --strategy cross, {kind}", s[f"xarch_cross_{kind}"])
        row(w, f"xarch --strategy emulate, {kind}", s[f"xarch_emulate_{kind}"])
        row(w, f"buildx linux/arm64 (QEMU), {kind}", s[f"buildx_{kind}"])
        cross = s[f"xarch_cross_{kind}"]["wall"]
        w(
            f"| **buildx / xarch cross; emulate / cross ({kind})** | "
            f"**{s[f'buildx_{kind}']['wall'] / cross:.1f}×; "
            f"{s[f'xarch_emulate_{kind}']['wall'] / cross:.1f}×** | | | | | | |"
        )
    if "xarch_cross_edit" in s:  # results stored before the edit rows existed have none
        for strategy in ("cross", "emulate"):
            name = f"xarch --strategy {strategy}, edit (one-line edit of hello.c, warm cache)"
            row(w, name, s[f"xarch_{strategy}_edit"])
        if "xarch_cross_edit_served" in s:
            row(w, "xarch --strategy cross, edit, served by `xarch serve`", s["xarch_cross_edit_served"])
        w(
            f"| **buildx / xarch (edit): buildx compile / xarch cross edit; / emulate edit** | "
            f"**{s['buildx_compile']['wall'] / s['xarch_cross_edit']['wall']:.1f}×; "
            f"{s['buildx_compile']['wall'] / s['xarch_emulate_edit']['wall']:.1f}×** | | | | | | |"
        )
    w("")
    w(commands_block(hello["commands"]))
    if "profile" in hello:
        w(
            "Profile of one xarch cross build, downloads cached, no step cache (cProfile, cumulative):"
            "\n\n```\n" + hello["profile"] + "\n```\n"
        )
