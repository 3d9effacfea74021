"""Markdown pieces every section of BENCHMARKS.md uses: units, the timing table's header and rows."""

from __future__ import annotations

from collections.abc import Callable


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def sec(n: float) -> str:
    return f"{n:.2f} s" if n < 10 else f"{n:.1f} s"


def met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def row(w: Callable[[str], None], name: str, st: dict, extra: str = "") -> None:
    daemon = f"{st['daemon_cpu']:.1f} s" if st["daemon_cpu"] else "–"
    w(
        f"| {name} | {sec(st['wall'])} | {st['cpu']:.1f} s | {daemon} | {st['total_cpu']:.1f} s | "
        f"{st['peak_rss_mb']:.0f} MB | {st['runs']} | {', '.join(f'{x:.2f}' for x in st['walls'])} |{extra}"
    )


TIME_HEADER = (
    "| run | wall (median) | CPU, process tree | CPU, docker side | CPU, total | peak RSS | runs | "
    "all walls (s) |\n|---|---|---|---|---|---|---|---|"
)
CPU_NOTE = (
    "CPU, process tree: user+sys of the command and its children (os.wait4 rusage). For buildx the "
    "CLI does almost nothing: the work happens in dockerd (BuildKit is built in), containerd and the "
    "RUN containers (QEMU included), so *CPU, docker side* is the change during the run of dockerd's "
    "and containerd's utime+stime plus the cpuacct cgroup `docker/` that holds the build containers. "
    "Peak RSS: the summed RSS of the process tree, sampled every 0.1 s (for buildx: plus dockerd, "
    "containerd and the build containers), or ru_maxrss if larger.\n"
)


def commands_block(commands: dict[str, str]) -> str:
    """The "Commands:" paragraph of a section: a sh block, each command under a comment naming it."""
    return "Commands:\n\n```sh\n" + "\n".join(f"# {k}\n{v}" for k, v in commands.items()) + "\n```\n"
