"""Measuring one command: wall time, CPU of its process tree (and of the docker side), peak RSS.

Also the shared places and launchers every case uses: the checkout (REPO), the work folder
(WORK, $XARCH_BENCH_DIR), how xarch is started (XARCH: this checkout's code whatever is
installed) and how a command is shown in the report.
"""

from __future__ import annotations

import contextlib
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
WORK = Path(os.environ.get("XARCH_BENCH_DIR", "/var/tmp/xarch-bench"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
EPOCH = 1700000000

# xarch runs from this checkout whatever is installed (a pyenv shim or an old .venv would
# add their own start-up time or measure other code): benchmarks/run_xarch.py is `xarch`.
# Children find this checkout and the benchmarks package through PYTHONPATH (child_pythonpath).
XARCH = [sys.executable, "-m", "benchmarks.run_xarch"]
XARCH_SHOWN = "xarch"  # how commands are printed in the report


def child_pythonpath() -> str:
    """PYTHONPATH for children: this checkout (xarch) and scripts/ (benchmarks), then the caller's."""
    entries = [str(REPO), str(SCRIPTS), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return os.pathsep.join(dict.fromkeys(e for e in entries if e))  # in order, each once


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user+sys of the command's process tree (os.wait4 rusage)
    daemon_cpu: float = 0.0  # docker only: dockerd + containerd + build containers (cgroup)
    peak_rss_mb: float = 0.0  # sampled sum of RSS (see Sampler), or ru_maxrss if larger
    output: str = ""

    @property
    def total_cpu(self) -> float:
        return self.cpu + self.daemon_cpu


def pid_of(name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


def proc_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of PID in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


DOCKER_CGROUP = Path("/sys/fs/cgroup/cpuacct/docker")  # cgroup v1: where BuildKit's RUN containers go


def docker_cpu() -> float:
    """CPU seconds so far of the docker side: dockerd (BuildKit runs inside it), containerd and
    every container cgroup under docker/ (cpuacct is hierarchical, so finished containers count)."""
    total = sum(proc_cpu(pid) for pid in filter(None, (pid_of("dockerd"), pid_of("containerd"))))
    with contextlib.suppress(OSError):
        total += int((DOCKER_CGROUP / "cpuacct.usage").read_text()) / 1e9
    return total


class Sampler:
    """Peak of the summed RSS of a process tree (and, for docker, of the daemons and build
    containers), sampled every 0.1 s: ru_maxrss only knows the largest single process."""

    def __init__(self, root: int, docker: bool) -> None:
        self.root, self.docker, self.peak = root, docker, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def pids(self) -> set[int]:
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        wanted = {self.root}
        if self.docker:
            wanted |= set(filter(None, (pid_of("dockerd"), pid_of("containerd"))))
            for procs in DOCKER_CGROUP.glob("**/cgroup.procs"):
                with contextlib.suppress(OSError):
                    wanted |= {int(x) for x in procs.read_text().split()}
        changed = True
        while changed:  # add descendants
            before = len(wanted)
            wanted |= {pid for pid, parent in parents.items() if parent in wanted}
            changed = len(wanted) != before
        return wanted

    def rss(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        return total

    def loop(self) -> None:
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    docker: bool = False,
    check: bool = True,
) -> Sample:
    """Run CMD once: wall time, rusage of its tree, docker-side CPU, peak RSS, output."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as maxrss:
        before = docker_cpu() if docker else 0.0
        start = time.perf_counter()
        # GNU time between us and CMD: a child forked from this (large) process would report
        # our RSS as its ru_maxrss. Its own CPU is negligible; %M is the largest process's peak.
        timed = ["/usr/bin/time", "-q", "-f", "%M", "-o", maxrss.name, *cmd]
        process = subprocess.Popen(
            timed, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})}
        )
        with Sampler(process.pid, docker) as sampler:
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        after = docker_cpu() if docker else 0.0
        out.seek(0)
        output = out.read().decode(errors="replace")
        largest_kb = int(maxrss.read().split()[-1] or 0)
    if check and process.returncode != 0:
        raise SystemExit(f"bench: command failed ({process.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    peak = max(sampler.peak, largest_kb * 1024)
    return Sample(wall, usage.ru_utime + usage.ru_stime, max(after - before, 0.0), peak / 1e6, output)


def run(cmd: list[str], **kwargs: object) -> str:
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    return str(result.stdout)


def shown(cmd: list[str]) -> str:
    """A command as a user would type it: `xarch` for the launcher, `python3` for this interpreter."""
    if cmd[:3] == XARCH:
        cmd = [XARCH_SHOWN, *cmd[3:]]
    elif cmd[:1] == [sys.executable]:
        cmd = ["python3", *cmd[1:]]
    return " ".join(arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else repr(arg) for arg in cmd)


def stats(samples: list[Sample]) -> dict[str, object]:
    return {
        "runs": len(samples),
        "wall": statistics.median(s.wall for s in samples),
        "walls": [round(s.wall, 3) for s in samples],
        "cpu": statistics.median(s.cpu for s in samples),
        "daemon_cpu": statistics.median(s.daemon_cpu for s in samples),
        "total_cpu": statistics.median(s.total_cpu for s in samples),
        "peak_rss_mb": statistics.median(s.peak_rss_mb for s in samples),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def profile_xarch(args: list[str], env: dict[str, str] | None = None, top: int = 14) -> str:
    """cProfile of one xarch run in a child interpreter (benchmarks/profile_xarch.py: main() only,
    not the imports before it): the TOP functions with most cumulative time, as pstats prints them."""
    with tempfile.TemporaryDirectory() as tmp:
        stats_file = Path(tmp) / "prof"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.profile_xarch", str(stats_file), *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": child_pythonpath(), **(env or {})},
            capture_output=True,
            check=True,
        )
        return top_functions(stats_file, top)


def top_functions(stats_file: Path, top: int) -> str:
    buffer = io.StringIO()
    report = pstats.Stats(str(stats_file), stream=buffer)
    report.strip_dirs().sort_stats("cumulative").print_stats(top * 3)
    lines = buffer.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    body = [line for line in lines[start + 1 :] if line.strip() and "builtins.exec" not in line]
    # Leave out the wrappers (the launcher, click's dispatch) whose time is all of it.
    total = max((float(line.split()[3]) for line in body), default=0.0)
    body = [line for line in body if float(line.split()[3]) < 0.97 * total] or body
    return "\n".join([lines[start], *body[:top]])


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def build_server(cache: Path | None, log_path: Path, expected: int) -> Iterator[None]:
    """`xarch serve` for CACHE while the block runs, started as the measured clients are (same
    launcher, folder and environment: it serves only a client like itself). Raises RuntimeError
    unless it served EXPECTED commands: a served row must never time commands it did not serve.
    CACHE None: the measured commands' own ($XARCH_CACHE, else the default)."""
    env = {**os.environ} if cache is None else {**os.environ, "XARCH_CACHE": str(cache)}
    with log_path.open("w") as log_file:
        server = subprocess.Popen([*XARCH, "serve", "--idle", "600"], cwd=REPO, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    deadline = time.monotonic() + 120
    while "serving" not in log_path.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"xarch serve did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    try:
        yield
    finally:
        server.terminate()
        server.wait(timeout=60)
    served = log_path.read_text().count("xarch serve: pid ")
    if served != expected:
        raise RuntimeError(f"xarch serve served {served} of {expected} commands:\n{log_path.read_text()}")
