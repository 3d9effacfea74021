"""Time one compile step of a small C program: native root, cross root, emulated root.

Usage: scripts/bench-step-strategies AMD64_ROOTFS ARM64_ROOTFS CROSS_ROOTFS [RUNS]
The amd64 and arm64 roots need gcc and libc6-dev, the cross root (amd64) the aarch64 cross
toolchain as xarch's cross strategy has it, e.g.:
  mmdebstrap --variant=apt --arch=arm64 --include=gcc,libc6-dev bookworm ARM64_ROOTFS
  mmdebstrap --variant=apt --include=gcc-aarch64-linux-gnu,libc6-dev-arm64-cross bookworm CROSS_ROOTFS
The emulated run needs binfmt_misc (xarch platforms --setup).
Times the step alone (namespace set-up included), not the step cache's snapshot.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from xarch import platforms
from xarch.run import cross, qemu
from xarch.run.chroot import RunResult, run_in_rootfs
from xarch.run.steps import fixed_env, place_source

HELLO_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int compare(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
int main(int argc, char **argv) {
    qsort(argv + 1, argc - 1, sizeof *argv, compare);
    for (int i = 1; i < argc; i++) printf("%s\n", argv[i]);
    printf("hello from %s\n", TARGET);
    return 0;
}
"""
STEP = 'mkdir -p /out && ${CC:-cc} -O2 -DTARGET="\\"$TARGETARCH\\"" -o /out/hello hello.c'
# A larger translation unit (400 small functions) so compile time, not start-up, dominates.
BIG_C = "".join(
    f"int f{i}(int x) {{ int s = 0; for (int j = 0; j < x; j++) s += (j * {i}) ^ (s >> 3); return s; }}\n"
    for i in range(400)
) + "int main(void) { return f1(3) == 0 ? 0 : 1; }\n"
BIG_STEP = '${CC:-cc} -O2 -c -o /big.o big.c'


def timed(label: str, runs: int, once: Callable[[], RunResult]) -> None:
    """Call ONCE RUNS times and print LABEL with the median and every wall time (seconds);
    exit with the step's last lines if a run fails."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        result = once()
        seconds.append(time.perf_counter() - start)
        if result.exit_code != 0:
            sys.exit(f"{label} failed:\n" + "\n".join(result.tail))
    each = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"{label:<36} median {statistics.median(seconds):6.2f} s  (runs: {each})")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-step-strategies",
        description=__doc__.replace(__doc__[__doc__.index("Usage:") : __doc__.index("The amd64")], ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("amd64_root", type=Path, metavar="AMD64_ROOTFS")
    parser.add_argument("arm64_root", type=Path, metavar="ARM64_ROOTFS")
    parser.add_argument("cross_root", type=Path, metavar="CROSS_ROOTFS")
    parser.add_argument("runs", type=int, nargs="?", default=3, metavar="RUNS")
    args = parser.parse_args()
    amd64_root, arm64_root, cross_root, runs = args.amd64_root, args.arm64_root, args.cross_root, args.runs
    plats = platforms.all_platforms()
    amd64, arm64 = plats["amd64"], plats["arm64"]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        (source / "hello.c").write_text(HELLO_C)
        (source / "big.c").write_text(BIG_C)
        for root in (amd64_root, arm64_root, cross_root):
            place_source(source, root)

        def quiet(line: str) -> None:  # the step's output is not part of the timing
            pass

        cross_env = {**fixed_env(arm64, 0), **cross.toolchain_env(arm64, amd64)}
        for name, step in (("hello.c", STEP), ("big.c", BIG_STEP)):
            timed(f"{name}: native amd64 (chroot)", runs, partial(
                run_in_rootfs, amd64_root, step, fixed_env(amd64, 0), cwd="/src", log=quiet))
            timed(f"{name}: cross arm64 (cross root)", runs, partial(
                run_in_rootfs, cross_root, step, cross_env, cwd="/src", log=quiet))
            timed(f"{name}: emulated arm64 (QEMU)", runs, partial(
                qemu.run_emulated, arm64, arm64_root, step, fixed_env(arm64, 0), cwd="/src", log=quiet))
        hello = cross_root / "out" / "hello"
        print(qemu.run_binary(arm64, hello, ["b", "a"], sysroot=Path("/usr/aarch64-linux-gnu")).strip())


if __name__ == "__main__":
    main()
