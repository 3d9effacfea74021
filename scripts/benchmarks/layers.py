"""Rows of layer writing: xarch's layer writer (gzip and zstd) against tar | gzip -n and tar | pigz -n."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.markdown import commands_block, mb, sec
from benchmarks.measuring import (
    EPOCH,
    WORK,
    Sample,
    child_pythonpath,
    fresh,
    loadavg,
    log,
    measure,
    run,
    shown,
    stats,
    top_functions,
)
from benchmarks.trees import make_tree

# The layer writer runs in its own interpreter (benchmarks/layer_writer.py), so its wall time
# and peak RSS are its own; shown in the report the way a user would type it from the checkout.
LAYER_WRITER = [sys.executable, "-m", "benchmarks.layer_writer"]
LAYER_WRITER_SHOWN = "PYTHONPATH=.:scripts python3 -m benchmarks.layer_writer"


def case_layer(runs: int) -> dict[str, object]:
    """RUNS rounds over the 300 MB tree (page cache warmed before each): the layer writer (gzip 6,
    zstd 6), tar | gzip -n and, when installed, tar | pigz -n; then one cProfile of the writer.
    Returns the stored results of the "layer" case (medians in "stats", output sizes in bytes)."""
    tree = WORK / "tree300" / "data"
    log("layer: making the 300 MB tree (once)")
    files, size = make_tree(tree)
    out = fresh(WORK / "out-layer")
    tar = (
        f"tar --sort=name --mtime=@{EPOCH} --owner=0 --group=0 --numeric-owner --exclude=.complete "
        f"-C {tree.parent} -cf - data"
    )
    tools = {
        "xarch": [*LAYER_WRITER, str(tree), str(out / "xarch.gz"), str(EPOCH)],
        "xarch_zstd": [*LAYER_WRITER, str(tree), str(out / "xarch.zst"), str(EPOCH), "zstd"],
        "tar_gzip": ["sh", "-c", f"{tar} | gzip -n > {out / 'tar.gz'}"],
    }
    if shutil.which("pigz"):
        tools["tar_pigz"] = ["sh", "-c", f"{tar} | pigz -n > {out / 'pigz.gz'}"]
    samples: dict[str, list[Sample]] = {k: [] for k in tools}
    env = {"PYTHONPATH": child_pythonpath()}
    for number in range(runs):
        log(f"layer run {number + 1}/{runs} (load {loadavg()})")
        run(["sh", "-c", f"find {tree} -type f -exec cat {{}} + > /dev/null"])  # same page cache for all
        for name, cmd in tools.items():
            samples[name].append(measure(cmd, env=env))
    outputs = {"xarch": "xarch.gz", "xarch_zstd": "xarch.zst", "tar_gzip": "tar.gz", "tar_pigz": "pigz.gz"}
    sizes = {name: (out / outputs[name]).stat().st_size for name in tools}
    uncompressed = int(samples["xarch"][-1].output.split()[2])
    log("layer: profiling the xarch layer writer once")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                f"{tmp}/prof",
                *LAYER_WRITER[1:],
                str(tree),
                f"{tmp}/x.gz",
                str(EPOCH),
            ],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        profile = top_functions(Path(f"{tmp}/prof"), 12)
    return {
        "stats": {k: stats(v) for k, v in samples.items()},
        "files": files,
        "bytes": size,
        "tar_bytes": uncompressed,
        "sizes": sizes,
        "commands": {
            "xarch": f"{LAYER_WRITER_SHOWN} {tree} out.gz {EPOCH}  "
            "(write_layer on a Tree made from the folder into a store, gzip level 6)",
            "xarch_zstd": f"{LAYER_WRITER_SHOWN} {shown(tools['xarch_zstd'][len(LAYER_WRITER) :])}",
            **{k: shown(v) for k, v in tools.items() if not k.startswith("xarch")},
        },
        "writer": "scripts/benchmarks/layer_writer.py",
        "profile": profile,
    }


def render_layer(w: Callable[[str], None], layer: dict) -> None:
    """The section "Writing a layer of a 300 MB tree" from the stored results of the layer case."""
    s = layer["stats"]
    w("## Writing a layer of a 300 MB tree\n")
    w(
        f"A deterministic tree of {layer['files']} files in 420 folders, {mb(layer['bytes'])}: 40 % random "
        f"bytes, 60 % text (tar stream {mb(layer['tar_bytes'])}). The page cache is warmed before every run. "
        "xarch: `xarch.oci.layer.write_layer` on a `Tree` made from the folder (scripts/benchmarks/"
        "layer_writer.py: walk, one `Entry` per file with its git-style mode, `write_layer` streaming into a "
        "store on every core), gzip by libdeflate level 6 (and zstd level 6), in one process; GNU gzip "
        "and pigz at their default level 6.\n"
    )
    w(
        "| writer | wall (median) | MB/s (tree bytes) | CPU | peak RSS | output | runs | all walls (s) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for name, label in (
        ("xarch", "xarch write_layer, gzip 6"),
        ("xarch_zstd", "xarch write_layer, zstd 6"),
        ("tar_gzip", "tar \\| gzip -n"),
        ("tar_pigz", "tar \\| pigz -n"),
    ):
        if name in s:
            st = s[name]
            w(
                f"| {label} | {sec(st['wall'])} | {layer['bytes'] / 1e6 / st['wall']:.0f} | "
                f"{st['cpu']:.1f} s | "
                f"{st['peak_rss_mb']:.0f} MB | {mb(layer['sizes'][name])} | {st['runs']} | "
                f"{', '.join(f'{x:.2f}' for x in st['walls'])} |"
            )
    w("")
    w(commands_block(layer["commands"]))
    w("Profile of the xarch layer writer (cProfile, cumulative):\n\n```\n" + layer["profile"] + "\n```\n")
