"""Rows of large trees: peak RSS and throughput of xarch build and the layer writer against tar | pigz."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from benchmarks.layers import LAYER_WRITER, LAYER_WRITER_SHOWN
from benchmarks.markdown import commands_block, mb, sec
from benchmarks.measuring import (
    EPOCH,
    WORK,
    XARCH,
    Sample,
    child_pythonpath,
    fresh,
    loadavg,
    log,
    measure,
    shown,
    stats,
)
from benchmarks.trees import make_big_tree

# The trees of the "big" case: (name, total bytes, files). 978 MiB in ~63k files is the tree of
# issue 14; the 5 GiB one has larger files (a few hundred KiB on average).
BIG_TREES = (("1g", 978 * 2**20, 63_000), ("5g", 5 * 2**30, 20_000))
BIG_RECIPE = """\
name: big
tag: big
platforms: [amd64]
epoch: 1700000000
files:
  - {src: data, dst: /data}
"""


def case_big(runs: int) -> dict[str, object]:
    """Peak RSS and wall of a whole `xarch build` of a large tree (one platform, one layer) and of
    the layer writer alone, next to `tar --sort=name | pigz` on the same tree, in the same loop."""
    results: dict[str, object] = {}
    env = {"PYTHONPATH": child_pythonpath()}
    # XARCH_BENCH_BIG_TREES=1g measures only the named trees (the others keep their stored rows).
    chosen = os.environ.get("XARCH_BENCH_BIG_TREES", ",".join(name for name, _, _ in BIG_TREES)).split(",")
    for name, total, count in BIG_TREES:
        if name not in chosen:
            continue
        base = WORK / f"tree{name}"
        tree = base / "data"
        log(f"big {name}: making the tree (once)")
        files, size = make_big_tree(tree, total, count)
        (base / "xarch.yaml").write_text(BIG_RECIPE)
        out = WORK / f"out-big-{name}"
        tar = (
            f"tar --sort=name --mtime=@{EPOCH} --owner=0 --group=0 --numeric-owner --exclude=.complete "
            f"-C {base} -cf - data"
        )
        cache = WORK / f"cache-big-{name}"
        tools = {
            "xarch_build": [*XARCH, "build", "-q", "--no-cache", "-f", str(base / "xarch.yaml"),
                            "-o", f"oci:{out / 'layout'}"],
            "xarch_layer": [*LAYER_WRITER, str(tree), str(out / "xarch.gz"), str(EPOCH)],
            "tar_pigz": ["sh", "-c", f"{tar} | pigz -6 -n > {out / 'pigz.gz'}"],
        }
        samples: dict[str, list[Sample]] = {k: [] for k in tools}
        number_of_runs = runs if total < 2 * 2**30 else max(1, runs // 3)
        sizes: dict[str, int] = {}
        for number in range(number_of_runs):
            log(f"big {name} run {number + 1}/{number_of_runs} (load {loadavg()})")
            for tool, cmd in tools.items():
                fresh(out)
                fresh(cache)
                samples[tool].append(measure(cmd, env={**env, "XARCH_CACHE": str(cache)}))
                produced = [f for f in out.rglob("*") if f.is_file()]
                sizes[tool] = max((f.stat().st_size for f in produced), default=0)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        results[name] = {
            "stats": {k: stats(v) for k, v in samples.items()},
            "files": files,
            "bytes": size,
            "sizes": sizes,
            "commands": {
                "xarch_build": f"XARCH_CACHE=$(mktemp -d) {shown(tools['xarch_build'])}",
                "xarch_layer": f"{LAYER_WRITER_SHOWN} {tree} out.gz {EPOCH}"
                "  (write_layer, gzip 6)",
                "tar_pigz": shown(tools["tar_pigz"]),
            },
        }
    return results


def render_big(w: Callable[[str], None], big: dict) -> None:
    """The section "Large trees: memory and throughput" from the stored results of the big case."""
    w("## Large trees: memory and throughput\n")
    w(
        "`xarch build` of a recipe whose only content is the tree (one platform, one layer, "
        "`--no-cache`, an empty `XARCH_CACHE`, output an OCI layout) and the layer writer alone "
        "(scripts/benchmarks/layer_writer.py), next to `tar --sort=name | pigz -6 -n` on the same tree "
        "in the same loop. Trees: deterministic (`make_big_tree` in scripts/benchmarks/trees.py), 40 % "
        "random bytes, 60 % text, lognormal file sizes. Not page-cache warmed: each tool reads the tree "
        "as the previous left it.\n"
    )
    w(
        "| tree | run | wall (median) | MB/s (tree bytes) | CPU | peak RSS | output | runs "
        "| all walls (s) |\n|---|---|---|---|---|---|---|---|---|"
    )
    for result in big.values():
        label = f"{mb(result['bytes'])}, {result['files']} files"
        for tool, text in (
            ("xarch_build", "xarch build"),
            ("xarch_layer", "xarch write_layer"),
            ("tar_pigz", "tar \\| pigz -6 -n"),
        ):
            st = result["stats"].get(tool)
            if st is None:
                continue
            w(
                f"| {label} | {text} | {sec(st['wall'])} | {result['bytes'] / 1e6 / st['wall']:.0f} | "
                f"{st['cpu']:.1f} s | {st['peak_rss_mb']:.0f} MB | {mb(result['sizes'].get(tool, 0))} | "
                f"{st['runs']} | {', '.join(f'{x:.2f}' for x in st['walls'])} |"
            )
    w("")
    first = next(iter(big.values()))
    w(commands_block(first["commands"]))
