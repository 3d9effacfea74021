"""Run an image's tree in the step sandbox, optionally under strace, and probe it.

The tree is written to a private folder and run by bubblewrap exactly as build steps are
(xarch.run.sandbox: uid 0 of a user namespace, no network but its own loopback, podman's
rootless capabilities), natively or under qemu-user through binfmt_misc. The probe is a host
command run in the sandbox's network namespace (nsenter), so it reaches the ports the program
listens on while nothing is exposed on the host.
"""

from __future__ import annotations

import fcntl
import os
import posixpath
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from xarch.errors import HostError
from xarch.oci.tree import Tree
from xarch.platforms import Platform
from xarch.run import qemu
from xarch.run.rootfs import materialize
from xarch.run.sandbox import (
    DEV_PROC,
    Bind,
    bwrap_argv,
    hand_over,
    new_staging,
    require_sandbox,
    running_as_root,
    sandbox_id,
)

POLL = 0.25  # seconds between probe attempts
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
STOP_GRACE = 5  # seconds between SIGTERM and SIGKILL when the run is stopped
# A server that forks into the background leaves the sandbox; its PID namespace then ends it.
DAEMON_HINT = " (a server must stay in the foreground: give trace.run the option that ends its daemon mode)"


class TracerMissing(HostError):
    """strace or nsenter is not installed (exit 3)."""


@dataclass(frozen=True)
class RunOutcome:
    """How one run went: PASSED says whether the probe succeeded (or, without a probe, whether
    the command exited 0 in time); DETAIL the last output lines for the message."""

    passed: bool
    detail: str
    trace: Path | None  # strace output, when traced


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TracerMissing(f"{name} is not installed; `apt-get install {name}` (scripts/setup-host does)")
    return path


class ProbeMissing(HostError):
    """trace.probe names a program this host does not have (exit 3)."""


def require_tools(traced: bool, probe: Sequence[str] | None) -> None:
    """Before any image is built: strace (TRACED), nsenter and the probe's program (PROBE, run
    on the host as the caller, found in the caller's PATH as nsenter's execvp finds it).
    Raises TracerMissing/ProbeMissing (exit 3), RecipeError for an empty program (exit 2)."""
    if traced:
        _tool("strace")
    if probe:
        _tool("nsenter")
        program = probe[0]
        if not program.strip():
            from xarch.errors import RecipeError

            raise RecipeError("trace.probe[0]: the probe's program is empty")
        if shutil.which(program) is None:
            where = "is not an executable file" if "/" in program else "is not in PATH"
            raise ProbeMissing(f"trace.probe: {program!r} {where} on this host; install it or name "
                               "another probe")


def _inside_pid(trace: Path, program: str) -> int | None:
    """The host pid of the traced command once it has exec'd (from the strace log so far)."""
    if not trace.exists():
        return None
    wanted = program.encode("utf-8", "surrogateescape")
    escaped = "".join(f"\\x{byte:02x}" for byte in wanted)
    with trace.open("r", encoding="ascii", errors="replace") as handle:
        for line in handle:
            match = re.match(r"([0-9]+)\s+execve\(\"((?:\\x[0-9a-f]{2})*)\"", line)
            if match and (match.group(2) == escaped or match.group(2).endswith("\\x2f" + escaped)):
                return int(match.group(1))
    return None


def _children_inside(pid: int) -> int | None:
    """The topmost process below PID whose network namespace is not ours (the sandbox's first
    process, whose user namespace owns that network namespace), or None while there is none."""
    ours = os.readlink("/proc/self/ns/net")
    frontier = [pid]
    seen = set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            if os.readlink(f"/proc/{current}/ns/net") != ours:
                return current
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        frontier += [int(child) for child in children]
    return None


def run_tree(tree: Tree, platform: Platform, host: Platform, command: Sequence[str],
             env: Mapping[str, str], workdir: str, probe: Sequence[str] | None, timeout: int, scratch: Path,
             traced: bool, ids: tuple[int, int] = (0, 0)) -> RunOutcome:
    """Write TREE below SCRATCH and run COMMAND in it (PLATFORM's architecture; QEMU when it is
    not HOST's). With PROBE, retry it in the command's network namespace until it succeeds or
    TIMEOUT seconds pass, then stop the command; without, wait for the command to exit.
    With TRACED, strace records every file call of the process tree. IDS: the config's user.

    Raises SandboxUnavailable/EmulationUnavailable/TracerMissing (exit 3) when this host
    cannot run it.
    """
    require_sandbox()
    strace = _tool("strace") if traced else None
    nsenter = _tool("nsenter") if probe else None
    root = scratch / "root"
    root.mkdir(parents=True)
    materialize(tree, root)
    for mountpoint in ("proc", "dev"):
        if not os.path.lexists(root / mountpoint):
            (root / mountpoint).mkdir()
    hand_over(root)
    log = scratch / "output.log"
    trace = scratch / "strace.log"
    with ExitStack() as stack:
        if platform.name != host.name:
            stack.enter_context(qemu.interpreter_inside(platform, root))
        staging = None if not running_as_root() else new_staging()
        if staging is not None:
            stack.callback(shutil.rmtree, staging, True)
        # The command sees the image's environment only; the host tools before it get a fixed PATH.
        settings = ["--clearenv"]
        for key, value in sorted(env.items()):
            settings += ["--setenv", key, value]
        argv = bwrap_argv([Bind(root, PurePosixPath("/")), *DEV_PROC, *settings], command, network=False,
                          staging=staging, cwd=workdir, ids=ids)
        if strace is not None:
            argv = [strace, "-f", "-qq", "-xx", "-s", "4096", "--pidns-translation", "-o", str(trace),
                    "-e", "trace=%file,%process,fchdir", "--", *argv]
        log.touch(mode=0o600)
        if running_as_root():
            # As runc does for a container's stdio: the command may reopen /dev/stdout (nginx does).
            os.chown(log, sandbox_id(), sandbox_id())
        with log.open("wb") as output:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, env={"PATH": HOST_PATH, "LC_ALL": "C.UTF-8"},
                                       start_new_session=True)
            try:
                passed, detail = _watch(process, probe, nsenter, timeout, trace if traced else None, command)
            finally:
                _stop(process)
    tail = log.read_bytes()[-2000:].decode("utf-8", "replace").strip().splitlines()[-5:]
    if not passed and tail:
        detail += " / output: " + " / ".join(tail)
    return RunOutcome(passed, detail, trace if traced else None)


def _watch(process: subprocess.Popen[bytes], probe: Sequence[str] | None, nsenter: str | None,
           timeout: int, trace: Path | None, command: Sequence[str]) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    if probe is None:
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"the command did not exit within {timeout} s (a server needs trace.probe)"
        return code == 0, f"the command exited {code}"
    assert nsenter is not None
    last = "the probe never ran"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hint = DAEMON_HINT if process.returncode == 0 else ""
            return False, f"the command exited {process.returncode} before the probe succeeded ({last}){hint}"
        target = _children_inside(process.pid)
        if target is not None and (trace is None or _inside_pid(trace, command[0]) is not None):
            left = max(1.0, deadline - time.monotonic())
            with _entering(nsenter, target) as (enter, fds):
                status, text = _probe_once([*enter, "--", *probe], left, fds)
            if status == 0:
                return True, "the probe succeeded"
            said = f": {text}" if text else ""
            last = "the probe timed out" if status is None else f"probe exit {status}{said}"
        time.sleep(POLL)
    return False, f"the probe did not succeed within {timeout} s ({last})"


NS_GET_USERNS = 0xB701  # ioctl(2) of a namespace file: the user namespace owning it (Linux 4.9)


@contextmanager
def _entering(nsenter: str, target: int) -> Iterator[tuple[list[str], tuple[int, ...]]]:
    """The nsenter words that enter TARGET's network namespace, and the fds to pass them.

    Root may enter it directly. An unprivileged caller first enters the user namespace that
    owns it, found with NS_GET_USERNS: not TARGET's own, which bwrap nests below that one to
    map --uid when it mounts /dev, and from which entering the network namespace is refused.
    """
    net = f"/proc/{target}/ns/net"
    if running_as_root():
        yield [nsenter, f"--net={net}"], ()
        return
    try:
        with open(net, "rb") as handle:
            owner = fcntl.ioctl(handle.fileno(), NS_GET_USERNS)
    except OSError:
        yield [nsenter, f"--net={net}", f"--user=/proc/{target}/ns/user", "--preserve-credentials"], ()
        return
    try:
        yield [nsenter, f"--net={net}", f"--user=/proc/self/fd/{owner}", "--preserve-credentials"], (owner,)
    finally:
        os.close(owner)


def _probe_once(argv: Sequence[str], timeout: float, fds: tuple[int, ...] = ()) -> tuple[int | None, str]:
    """Run the probe once in a session of its own; (exit code or None on timeout, its last line).

    Whatever it started (a background helper, a shell's children) is killed with it, so no
    probe process outlives the attempt or keeps the sandbox's network namespace alive. Its
    output goes to a file, not a pipe: a child left holding a pipe would hide the probe's exit.
    """
    with tempfile.TemporaryFile() as output:
        probe = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                 start_new_session=True, pass_fds=fds)
        try:
            status: int | None = probe.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            try:
                os.killpg(probe.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            probe.wait()
        output.seek(0)
        lines = output.read().decode("utf-8", "replace").strip().splitlines()
    return status, lines[-1] if lines and status is not None else ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the whole run: strace, the sandbox tools and, through bwrap's --die-with-parent, the command."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def find_program(tree: Tree, program: str, path_env: str, workdir: str) -> str | None:
    """The image path (no leading "/") of the regular file PROGRAM runs in TREE, following
    symlinks as the kernel does: an absolute path, a path with a slash from WORKDIR, or a bare
    name searched in PATH_ENV's folders as execvp does. None when there is no such file."""
    from xarch.trace.closure import resolve

    if program.startswith("/"):
        candidates = [program]
    elif "/" in program:
        candidates = [posixpath.join(workdir, program)]
    else:
        candidates = [posixpath.join(folder or "/", program) for folder in path_env.split(":") if folder]
    for candidate in candidates:
        final = resolve(tree, candidate, set())
        entry = tree.get(final) if final else None
        if entry is not None and entry.type in ("file", "hardlink"):
            return final
    return None


def user_ids(user: str | None, tree: Tree, where: str = "") -> tuple[int, int]:
    """The (uid, gid) the config's USER names: numbers, or names looked up in TREE's
    /etc/passwd and /etc/group as a runtime does (a name it lacks is a RecipeError, its
    message starting with WHERE: the recipe's path)."""
    from xarch.errors import RecipeError

    if not user:
        return 0, 0
    name, _, group = user.partition(":")

    def field(file: str, key: str, column: int) -> int | None:
        """COLUMN (a number) of the row of FILE whose first field is KEY."""
        entry = tree.get(file)
        text = entry.read().decode("utf-8", "replace") if entry is not None and entry.type == "file" else ""
        for line in text.splitlines():
            fields = line.split(":")
            number = fields[column] if fields[0] == key and len(fields) > column else ""
            if number.isascii() and number.isdigit():
                return int(number)
        return None

    def lookup(file: str, key: str) -> int:
        found = int(key) if key.isascii() and key.isdigit() else field(file, key, 2)
        if found is None:
            raise RecipeError(f"{where}config.user: {key!r} is not in the image's /{file}")
        return found

    uid = lookup("etc/passwd", name)
    if group:
        return uid, lookup("etc/group", group)
    if name.isascii() and name.isdigit():
        return uid, 0  # as runc: a bare uid runs with gid 0
    return uid, field("etc/passwd", name, 3) or 0  # the user's primary group
