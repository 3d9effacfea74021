"""Rows of pushing: xarch push against skopeo copy --all to a local docker-registry."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.markdown import commands_block, mb, sec
from benchmarks.measuring import (
    EPOCH,
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
from benchmarks.trees import make_tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry(storage: Path) -> Iterator[str]:
    """The Debian docker-registry on 127.0.0.1, with STORAGE, stopped afterwards."""
    port = free_port()
    config = storage.parent / f"{storage.name}.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage:\n  filesystem: {{rootdirectory: {storage}}}\n  delete: {{enabled: true}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("bench: docker-registry did not start") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def remote_digest(address: str, repo: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{address}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    with urllib.request.urlopen(request) as response:
        return str(response.headers["Docker-Content-Digest"])


def push_layouts() -> dict[str, Path]:
    """The nginx layout (2 platforms, ~30 MB) and a large one (2 platforms, one ~215 MB layer each)."""
    nginx = WORK / "push-layout"
    if not (nginx / "index.json").exists():
        log("push: building the nginx layout to push")
        run(
            [*XARCH, "build", "-q", "-f", str(REPO / "examples/nginx/xarch.yaml"), "-o", f"oci:{nginx}"],
            cwd=REPO,
        )
    large = WORK / "push-layout-large"
    if not (large / "index.json").exists():
        log("push: building the large layout from the 300 MB tree")
        tree = WORK / "tree300" / "data"
        make_tree(tree)
        run([sys.executable, "-m", "benchmarks.large_layout", str(tree), str(large), str(EPOCH)], cwd=REPO)
    return {"nginx": nginx, "large": large}


def case_push(runs: int) -> dict[str, object]:
    """RUNS rounds (at least 3 of the large layout, half as many) of a first push and a re-push by
    xarch and by skopeo, each tool to its own new registry; the index digest each registry serves;
    one cProfile of a first xarch push. Returns the stored results of the "push" case."""
    layouts = push_layouts()
    samples: dict[str, list[Sample]] = {}
    digests: dict[str, str] = {}
    shown_commands: dict[str, str] = {}
    local: dict[str, str] = {}
    blob_bytes: dict[str, int] = {}
    for image, layout in layouts.items():
        top = json.loads((layout / "index.json").read_text())["manifests"][0]
        tag = top["annotations"]["org.opencontainers.image.ref.name"]
        local[image] = top["digest"]
        blob_bytes[image] = sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir())
        suffix = "" if image == "nginx" else "_large"
        image_runs = runs if image == "nginx" else max(3, runs // 2)
        for number in range(image_runs):
            log(f"push {image} run {number + 1}/{image_runs} (load {loadavg()})")
            # xarch-served: the same push handed to a build server (`xarch serve`, started first, not timed)
            for tool in ("xarch", "xarch-served", "skopeo") if image == "nginx" else ("xarch", "skopeo"):
                with registry(fresh(WORK / "registry" / tool)) as address:
                    ref = f"{address}/{tool}/{image}:{tag}"
                    if tool.startswith("xarch"):
                        cmd = [*XARCH, "push", "-q", str(layout), ref, "--insecure"]
                    else:
                        cmd = ["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                               f"oci:{layout}:{tag}", f"docker://{ref}"]  # fmt: skip
                    serving = (build_server(None, WORK / "serve-push.log", 2) if tool == "xarch-served"
                               else contextlib.nullcontext())
                    with serving:
                        samples.setdefault(f"{tool}_first{suffix}", []).append(measure(cmd))
                        samples.setdefault(f"{tool}_again{suffix}", []).append(measure(cmd))
                    digests[f"{tool}{suffix}"] = remote_digest(address, f"{tool}/{image}", tag)
                    shown_commands[f"{tool}{suffix}"] = shown(cmd).replace(address, "127.0.0.1:PORT")
    log("push: profiling one first xarch push")
    with registry(fresh(WORK / "registry" / "profile")) as address:
        profile = profile_xarch(["push", "-q", str(layouts["nginx"]), f"{address}/p/nginx:1", "--insecure"])
    return {
        "stats": {k: stats(v) for k, v in samples.items()},
        "digests": digests,
        "local_index": local["nginx"],
        "local_index_large": local["large"],
        "blob_bytes": blob_bytes["nginx"],
        "large_blob_bytes": blob_bytes["large"],
        "commands": shown_commands,
        "profile": profile,
    }


def render_push(w: Callable[[str], None], push: dict) -> None:
    """The section "Pushing the multi-arch nginx image to a local registry" from the push case's results."""
    s = push["stats"]
    w("## Pushing the multi-arch nginx image to a local registry\n")
    w(
        f"The OCI layout of examples/nginx (2 platforms, {mb(push['blob_bytes'])} of blobs) pushed to the "
        "Debian `docker-registry` on 127.0.0.1 (filesystem storage, started by the script). *First*: a "
        "registry with empty storage; *re-push*: the same push again. *Large*: a layout written with "
        "xarch's OCI core from the 300 MB tree below (scripts/benchmarks/large_layout.py), 2 platforms with "
        f"one ~215 MB layer each ({mb(push.get('large_blob_bytes', 0))} of blobs), where throughput, not "
        "start-up, decides.\n"
    )
    w("| push | wall (median) | CPU | peak RSS | runs | all walls (s) |\n|---|---|---|---|---|---|")
    for key, label in (
        ("xarch_first", "nginx: xarch push, first"),
        ("skopeo_first", "nginx: skopeo copy --all, first"),
        ("xarch-served_first", "nginx: xarch push, first, served by `xarch serve`"),
        ("xarch_again", "nginx: xarch push, re-push"),
        ("xarch-served_again", "nginx: xarch push, re-push, served by `xarch serve`"),
        ("skopeo_again", "nginx: skopeo copy --all, re-push"),
        ("xarch_first_large", "large: xarch push, first"),
        ("skopeo_first_large", "large: skopeo copy --all, first"),
        ("xarch_again_large", "large: xarch push, re-push"),
        ("skopeo_again_large", "large: skopeo copy --all, re-push"),
    ):
        if key not in s:
            continue
        st = s[key]
        w(
            f"| {label} | {sec(st['wall'])} | {st['cpu']:.2f} s | {st['peak_rss_mb']:.0f} MB | "
            f"{st['runs']} | "
            f"{', '.join(f'{x:.2f}' for x in st['walls'])} |"
        )
    w("")
    for suffix, local in (("", push["local_index"]), ("_large", push.get("local_index_large"))):
        remote = {k: v for k, v in push["digests"].items() if k.endswith(suffix) and (suffix or "_" not in k)}
        if not remote:
            continue
        verdict = "the same as the local layout" if set(remote.values()) == {local} else f"NOT all {local}"
        listed = ", ".join(f"{k} {v[:19]}…" for k, v in remote.items())
        w(f"Index digest in the registry ({'large' if suffix else 'nginx'}): {listed}; {verdict}.\n")
    w(commands_block(push["commands"]))
    w("Profile of one first xarch push (cProfile, cumulative):\n\n```\n" + push["profile"] + "\n```\n")
