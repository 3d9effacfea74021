"""End to end: the build server (`xarch serve`, xarch.server). Real server and client processes on
a real socket: a served build gives the bytes a local one gives, with the client's working folder,
environment, exit code and signals; a client unlike the server (limits, code) and hostile packets
are refused and the command runs in its client; the server's folder must be private.

Evidence that a command was served is the server's log line naming its pid; of correctness, the
output's index digest against a build with XARCH_SERVER=off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e import EPOCH, REPO, image_files, index_digest
from tests.support.needs import need_root, need_tool
from tests.support.nobody import as_nobody
from tests.support.stages import HOST, SHELL, write_recipe
from xarch.server.wire import HANDSHAKE

pytestmark = pytest.mark.integration

# `python -c`: sys.path[0] is "" for server and clients alike, wherever each runs (`python -m`
# puts the working folder there, and the server refuses a client whose sys.path differs).
LAUNCH = [sys.executable, "-c", "from xarch.cli.main import main; main()"]


def _env(cache: Path, pythonpath: Path = REPO, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "XARCH_SERVER")}
    env.update(XARCH_CACHE=str(cache), PYTHONPATH=str(pythonpath), **extra)
    return env


class Server:
    """A real `xarch serve` process and its log."""

    def __init__(self, cache: Path, log: Path, *args: str, pythonpath: Path = REPO, shell: str = "",
                 **extra: str) -> None:
        self.cache, self.log_path = cache, log
        # SHELL: a redirection the server starts with (`<&-`: no stdin)
        command = ["sh", "-c", f'exec "$@" {shell}', "sh", *LAUNCH, "serve", *args]
        self.process = subprocess.Popen(command, env=_env(cache, pythonpath, **extra),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=log.open("w"), cwd="/")
        deadline = time.monotonic() + 60
        while "serving" not in self.log():
            assert self.process.poll() is None, f"the server ended:\n{self.log()}"
            assert time.monotonic() < deadline, f"the server did not start:\n{self.log()}"
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text()

    def served(self) -> list[int]:
        """The pids of the commands it served so far."""
        return [int(line.split()[3].rstrip(":")) for line in self.log().splitlines()
                if line.startswith("xarch serve: pid ")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def server(cache: Path, tmp_path: Path) -> Iterator[Server]:
    running = Server(cache, tmp_path / "serve.log")
    yield running
    running.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "index.html").write_text("<p>served</p>\n")
    (folder / "xarch.yaml").write_text(f"""\
name: served
platforms: [amd64, arm64]
epoch: {EPOCH}
files:
  - {{src: site, dst: /srv/site}}
""")
    return folder


def client(cache: Path, *args: str, cwd: Path, prefix: tuple[str, ...] = (), pythonpath: Path = REPO,
           **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *LAUNCH, *args], cwd=cwd, env=_env(cache, pythonpath, **extra),
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_served_build_is_the_local_build_with_the_clients_folder_and_environment(
        server: Server, project: Path, cache: Path, tmp_path: Path) -> None:
    # cwd: a relative -f and -o are the client's; environment: SOURCE_DATE_EPOCH changes the epoch
    served = client(cache, "build", "-f", "xarch.yaml", "-o", "oci:served", cwd=project,
                    SOURCE_DATE_EPOCH="1600000000")
    assert served.returncode == 0, served.stderr
    assert len(server.served()) == 1, server.log()
    assert "epoch 1600000000: SOURCE_DATE_EPOCH" in served.stderr  # its progress is on the client's stderr
    assert "building served" not in server.log()  # (not on the server's)
    local = client(cache, "build", "-f", "xarch.yaml", "-o", "oci:local", "--no-cache", cwd=project,
                   SOURCE_DATE_EPOCH="1600000000", XARCH_SERVER="off")
    assert local.returncode == 0, local.stderr
    assert len(server.served()) == 1
    assert index_digest(project / "served") == index_digest(project / "local")
    assert served.stdout == local.stdout.replace("oci:local", "oci:served")
    other_epoch = client(cache, "build", "-o", "oci:other", cwd=project)
    assert other_epoch.returncode == 0 and len(server.served()) == 2
    assert index_digest(project / "other") != index_digest(project / "served")


STEP_RECIPE = f"""\
name: served-steps
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      - run: |
          mkdir -p /out
          echo "made in a step" > /out/made
copy:
  - {{from: "build:/out/made", dst: /made}}
"""


def test_a_served_step_runs_sandboxed_with_the_clients_tools(cache: Path, tmp_path: Path,
                                                             busybox_shell: None) -> None:
    # The server's PATH finds a `tar` that fails: a served build must run the client's tools
    # (loaded libraries kept a copy of the server's environment: plumbum's local.env).
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "tar").write_text(f"#!/bin/sh\ntouch {tmp_path}/fake-tar-ran\nexit 1\n")
    (fake / "tar").chmod(0o755)
    running = Server(cache, tmp_path / "serve.log", PATH=f"{fake}:{os.environ['PATH']}")
    try:
        recipe = write_recipe(tmp_path / "src", STEP_RECIPE)
        served = client(cache, "build", "-f", str(recipe), "-o", "oci:served", cwd=tmp_path)
        assert served.returncode == 0, served.stderr
        assert len(running.served()) == 1, running.log()
        assert not (tmp_path / "fake-tar-ran").exists()
        assert image_files(tmp_path / "served", HOST)["made"].data == b"made in a step\n"
        local = client(cache, "build", "-f", str(recipe), "-o", "oci:local", "--no-cache", cwd=tmp_path,
                       XARCH_SERVER="off")
        assert local.returncode == 0, local.stderr
        assert index_digest(tmp_path / "served") == index_digest(tmp_path / "local")
    finally:
        running.stop()


SLOW_RECIPE = f"""\
name: served-slow
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      - secrets: [tok]
        run: |
          mkdir -p /out
          wc -c < /run/secrets/tok > /out/length
          sleep "$(cat /run/secrets/tok)"
copy:
  - {{from: "build:/out/length", dst: /length}}
"""


def _slow(tmp_path: Path, seconds: int) -> tuple[Path, int]:
    """The slow recipe, and a descriptor open on its secret (SECONDS to sleep): (recipe, fd)."""
    recipe = write_recipe(tmp_path / "slow", SLOW_RECIPE)
    (tmp_path / "tok").write_text(str(seconds))
    return recipe, os.open(tmp_path / "tok", os.O_RDONLY)


def test_a_descriptor_the_client_inherited_is_the_commands(server: Server, cache: Path, tmp_path: Path,
                                                         busybox_shell: None) -> None:
    # `--secret id=tok,src=<(pass show tok)` names /dev/fd/N: N must be open in the command too
    recipe, fd = _slow(tmp_path, 0)
    try:
        built = subprocess.run([*LAUNCH, "build", "-f", str(recipe), "-o", "oci:out", "--secret",
                                f"id=tok,src=/dev/fd/{fd}"], cwd=tmp_path, env=_env(cache), pass_fds=(fd,),
                               capture_output=True, text=True, timeout=300, check=False)
    finally:
        os.close(fd)
    assert built.returncode == 0, built.stderr
    assert len(server.served()) == 1
    assert image_files(tmp_path / "out", HOST)["length"].data == b"1\n"


def _slow_build(server: Server, cache: Path, tmp_path: Path,
                **popen: Any) -> tuple[subprocess.Popen[str], int]:
    """A served build whose step sleeps 60 s, once its step runs: (client, command's pid)."""
    recipe, fd = _slow(tmp_path, 60)
    before = len(server.served())
    command = [*LAUNCH, "build", "-f", str(recipe), "-o", "oci:out", "--no-cache", "--secret",
               f"id=tok,src=/dev/fd/{fd}"]
    building = subprocess.Popen(command, cwd=tmp_path, env=_env(cache), pass_fds=(fd,),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    os.close(fd)
    deadline = time.monotonic() + 60
    while len(server.served()) == before:
        assert time.monotonic() < deadline and building.poll() is None, server.log()
        time.sleep(0.05)
    time.sleep(2)  # into the step
    return building, server.served()[-1]


def test_sigterm_ends_a_served_build_even_when_the_client_ignored_it(
        server: Server, cache: Path, tmp_path: Path, busybox_shell: None) -> None:
    # xarch takes SIGTERM whatever its parent ignored (`trap '' TERM`): served, so does its client
    building, pid = _slow_build(server, cache, tmp_path,
                                preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    building.send_signal(signal.SIGTERM)
    _, stderr = building.communicate(timeout=30)
    assert building.returncode == 143, stderr
    assert _gone(pid)
    assert not (tmp_path / "out").exists()


def test_a_command_ended_by_a_signal_ends_its_client_by_it(server: Server, cache: Path, tmp_path: Path,
                                                            busybox_shell: None) -> None:
    building, pid = _slow_build(server, cache, tmp_path)
    building.send_signal(signal.SIGHUP)  # a closed terminal: the command dies by it, and so does the client
    building.communicate(timeout=30)
    assert building.returncode == -signal.SIGHUP
    assert _gone(pid)


def test_a_command_whose_relay_dies_ends(server: Server, cache: Path, tmp_path: Path,
                                        busybox_shell: None) -> None:
    building, pid = _slow_build(server, cache, tmp_path)
    relay = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    os.kill(relay, signal.SIGKILL)
    _, stderr = building.communicate(timeout=30)
    assert building.returncode == 70
    assert "the build server stopped before the command ended" in stderr
    assert _gone(pid, 10)  # not the 60 s its step would take
    time.sleep(1)
    assert not (tmp_path / "out").exists()  # nothing written after its client was told it failed


def test_a_log_nobody_reads_blocks_nothing(cache: Path, tmp_path: Path, project: Path) -> None:
    read, write = os.pipe()
    server = subprocess.Popen([*LAUNCH, "serve"], env=_env(cache), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=write, cwd="/")
    os.set_blocking(write, False)
    try:
        deadline = time.monotonic() + 60
        while not (cache / "server" / "socket").exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.1)
        while True:  # fill the pipe: from now on a blocking write to it would wait for ever
            try:
                os.write(write, b"x" * 4096)
            except BlockingIOError:
                break
        started = time.monotonic()
        built = client(cache, "build", "-o", "oci:out", cwd=project)
        assert built.returncode == 0, built.stderr
        assert time.monotonic() - started < HANDSHAKE  # served, not after a timeout
        again = client(cache, "build", "-o", "oci:out", cwd=project)
        assert again.returncode == 0, again.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.close(read)
        os.close(write)


def test_a_failing_served_command_has_its_exit_code_and_one_line(server: Server, tmp_path: Path,
                                                                  cache: Path) -> None:
    missing = client(cache, "build", "-f", "nowhere.yaml", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "xarch: error: nowhere.yaml: no such recipe file\n"
    usage = client(cache, "push", "--no-such-option", cwd=tmp_path)
    assert usage.returncode == 2 and "No such option" in usage.stderr
    assert len(server.served()) == 2, server.log()
    assert "Traceback" not in server.log()


class _Silent:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def _pushing(server: Server, cache: Path, project: Path) -> tuple[subprocess.Popen[str], int, _Silent]:
    """A served push to a registry that never answers, once it is running: (client, command's pid)."""
    built = client(cache, "build", "-o", "oci:out", cwd=project)
    assert built.returncode == 0, built.stderr
    silent = _Silent()
    before = len(server.served())
    pushing = subprocess.Popen([*LAUNCH, "push", "oci:out", f"127.0.0.1:{silent.port}/team/app:1"],
                               cwd=project, env=_env(cache), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(server.served()) == before:
        assert time.monotonic() < deadline and pushing.poll() is None, server.log()
        time.sleep(0.05)
    return pushing, server.served()[-1], silent


def _gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
        if status == "Z":  # ended, not yet reaped by its relay
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_reaches_the_served_command(server: Server, cache: Path, project: Path) -> None:
    pushing, pid, silent = _pushing(server, cache, project)
    try:
        time.sleep(0.5)  # into the push: waiting on the registry's answer
        # it holds none of the server's descriptors (its folder, its socket)
        held = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert str(cache / "server") not in held
        assert len(held) <= 8, held  # stdio, the connection to the registry, and a few of its own
        pushing.send_signal(signal.SIGINT)
        _, stderr = pushing.communicate(timeout=30)
        assert pushing.returncode == 130, stderr
        assert stderr.endswith("xarch: interrupted\n"), stderr
        assert _gone(pid)
    finally:
        silent.close()


def test_a_client_that_dies_ends_its_command(server: Server, cache: Path, project: Path) -> None:
    pushing, pid, silent = _pushing(server, cache, project)
    try:
        pushing.kill()  # SIGKILL: the client says nothing; its relay sees the connection close
        pushing.wait(timeout=10)
        assert _gone(pid), f"command {pid} still runs after its client died"
    finally:
        silent.close()


def test_a_client_with_other_limits_runs_the_command_itself(server: Server, cache: Path,
                                                            project: Path) -> None:
    limited = client(cache, "build", "-o", "oci:out", cwd=project, prefix=("prlimit", "--nofile=900:900"))
    assert limited.returncode == 0, limited.stderr
    assert server.served() == []
    assert "refused: the client's process differs from the server's in: limits" in server.log()


def test_a_client_without_stdin_or_stdout_runs_the_command_itself(server: Server, cache: Path,
                                                                    project: Path) -> None:
    for closed, code in (("<&-", 0), (">&-", 2)):
        result = subprocess.run(["sh", "-c", f'exec "$@" {closed}', "sh", *LAUNCH, "build", "-o", "oci:out"],
                                cwd=project, env=_env(cache), capture_output=True, text=True, timeout=300,
                                check=False)
        local = subprocess.run(["sh", "-c", f'exec "$@" {closed}', "sh", *LAUNCH, "build", "-o", "oci:local"],
                               cwd=project, env=_env(cache, XARCH_SERVER="off"), capture_output=True,
                               text=True, timeout=300, check=False)
        assert (result.returncode, result.stderr.splitlines()[-1:]) == \
            (code, local.stderr.replace("oci:local", "oci:out").splitlines()[-1:])
    assert server.served() == []
    assert "internal error" not in server.log()


def test_a_server_without_stdin_or_stdout_serves(cache: Path, tmp_path: Path, project: Path) -> None:
    running = Server(cache, tmp_path / "serve.log", shell="<&- >&-")
    try:
        served = client(cache, "build", "-o", "oci:out", cwd=project)
        assert served.returncode == 0, served.stderr
        assert len(running.served()) == 1
    finally:
        running.stop()


def test_a_server_whose_log_fails_runs_each_command_once(cache: Path, tmp_path: Path, project: Path) -> None:
    server = subprocess.Popen([*LAUNCH, "serve"], env=_env(cache), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        assert server.stderr is not None
        assert "serving" in server.stderr.readline()
        server.stderr.close()  # every later log line fails (EPIPE)
        built = client(cache, "build", "-o", "oci:out", "--build-arg", "NONE=1", cwd=project)
        # once: served or not, the one error line is said once (a second run would say it again)
        assert built.stderr.count("xarch: error:") == 1, built.stderr
        built = client(cache, "build", "-o", "oci:out", cwd=project)
        assert built.returncode == 0 and built.stderr.count("wrote oci:out") == 1, built.stderr
        stop = subprocess.run([*LAUNCH, "serve", "--stop"], env=_env(cache), capture_output=True, text=True,
                              timeout=60, check=False)
        assert "stopped" in stop.stderr  # and --stop works, whatever the log does
        server.wait(timeout=30)
    finally:
        server.kill()
        server.wait()


def test_a_client_that_leaves_before_go_runs_nothing(server: Server, cache: Path, project: Path) -> None:
    # A client like the server's clients (same launcher) that sends a real request, then leaves:
    # once it has the answer ("ready"), or without reading it; it never says "go".
    leave = """
import os, socket, sys
from xarch.server import context, wire
name, mode = sys.argv[1:]
sys.argv = ["xarch", "build", "-o", "oci:" + name]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.connect(os.environ["XARCH_CACHE"] + "/server/socket")
cwd = os.open(".", os.O_PATH)
wire.send(sock, {"facts": context.facts(), "carried": context.carried()})
if mode == "answer":
    print(wire.receive(sock)[0])
"""
    answers = []
    for name, mode in (("answered", "answer"), ("unread", "")):
        left = subprocess.run([sys.executable, "-c", leave, name, mode], cwd=project, env=_env(cache),
                              capture_output=True, text=True, timeout=60, check=False)
        assert left.returncode == 0, left.stderr
        answers.append(left.stdout)
    assert "'ready'" in answers[0]  # it was taken, then left without "go"
    time.sleep(HANDSHAKE + 2)  # past the relay's wait for "go"
    assert not (project / "answered").exists() and not (project / "unread").exists()
    assert server.served() == []


def test_a_stopped_server_does_not_hold_a_client(server: Server, cache: Path, project: Path) -> None:
    server.process.send_signal(signal.SIGSTOP)  # e.g. Ctrl-Z in its terminal
    try:
        started = time.monotonic()
        built = client(cache, "build", "-o", "oci:out", cwd=project)
        assert built.returncode == 0, built.stderr
        assert time.monotonic() - started < 30
    finally:
        server.process.send_signal(signal.SIGCONT)
    time.sleep(3)  # the server now reads that client's request: it must not run it
    assert server.served() == []
    assert built.stderr.count("wrote oci:out") == 1


def test_stop_of_a_stopped_server_is_one_line(server: Server, cache: Path) -> None:
    server.process.send_signal(signal.SIGSTOP)
    try:
        stop = subprocess.run([*LAUNCH, "serve", "--stop"], env=_env(cache), capture_output=True, text=True,
                              timeout=60, check=False)
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert stop.returncode == 3
    assert stop.stderr == f"xarch: error: {cache}/server/socket: the server does not answer (stopped?)\n"


def test_stop_then_start_again(server: Server, cache: Path, tmp_path: Path) -> None:
    stop = subprocess.run([*LAUNCH, "serve", "--stop"], env=_env(cache), capture_output=True, text=True,
                          timeout=60, check=False)
    assert stop.returncode == 0 and "stopped" in stop.stderr
    again = Server(cache, tmp_path / "again.log")  # at once: the socket is gone when --stop returns
    again.stop()


def test_the_log_names_the_command_not_its_arguments(server: Server, cache: Path, project: Path) -> None:
    built = client(cache, "build", "-o", "oci:out", "--label", "token=s3cr3t", cwd=project)
    assert built.returncode == 0, built.stderr
    assert "s3cr3t" not in server.log()
    assert server.log().splitlines()[-1].endswith(": build")


@pytest.mark.parametrize("prefix, fact", [
    (("chrt", "--idle", "0"), "scheduling"),  # the scheduling policy
    (("ionice", "-c", "3"), "scheduling"),  # the I/O priority
    # LD_PRELOAD, the way faketime (reprotest's time variation) fakes the clock: here a library
    # every process maps anyway, so that nothing but the variable differs
    (("env", "LD_PRELOAD=libc.so.6"), "start_env"),
    (("setarch", "-R"), "personality"),  # no address space randomization: reprotest's aslr variation
])
def test_a_client_started_otherwise_runs_the_command_itself(server: Server, cache: Path, project: Path,
                                                            prefix: tuple[str, ...], fact: str) -> None:
    need_tool(prefix[0])
    varied = client(cache, "build", "-o", "oci:out", cwd=project, prefix=prefix)
    assert varied.returncode == 0, varied.stderr
    assert server.served() == []
    assert f"refused: the client's process differs from the server's in: {fact}" in server.log()


def test_a_server_whose_code_changed_stops_and_the_client_builds(tmp_path: Path, cache: Path,
                                                                 project: Path) -> None:
    copy = tmp_path / "code"
    shutil.copytree(REPO / "xarch", copy / "xarch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "platforms", copy / "platforms")
    running = Server(cache, tmp_path / "serve.log", pythonpath=copy)
    try:
        first = client(cache, "build", "-o", "oci:one", cwd=project, pythonpath=copy)
        assert first.returncode == 0 and len(running.served()) == 1, running.log()
        changed = copy / "xarch" / "units.py"
        changed.write_text(changed.read_text() + "\n# an edit\n")
        second = client(cache, "build", "-o", "oci:two", cwd=project, pythonpath=copy)
        assert second.returncode == 0, second.stderr
        assert len(running.served()) == 1
        assert "refused: xarch's code or the interpreter's libraries changed" in running.log()
        running.process.wait(timeout=30)  # it stops: the next command does not ask it again
        assert not (cache / "server" / "socket").exists()
        assert index_digest(project / "one") == index_digest(project / "two")
    finally:
        running.stop()


def test_hostile_packets_are_refused_and_the_server_goes_on(server: Server, cache: Path,
                                                            project: Path) -> None:
    address = str(cache / "server" / "socket")
    null = os.open("/dev/null", os.O_RDONLY)
    good_facts_request = {"carried": {"argv": ["x", "build"], "env": {"A=B": "c"}, "umask": 18,
                                      "ignored": 0, "blocked": 0}, "facts": {}}
    packets: list[tuple[bytes, list[int]]] = [
        (b"not json", []), (b"[1, 2]", []), (b"{}", []), (json.dumps({"carried": {}}).encode(), [null] * 4),
        (json.dumps(good_facts_request).encode(), [null] * 4),  # a key holding "="
        (json.dumps({"stop": True}).encode(), [null]),  # stop with descriptors: not a stop
        (b"{" * 100_000, []),
    ]
    try:
        for data, fds in packets:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
                sock.connect(address)
                if fds:
                    socket.send_fds(sock, [data], fds)
                else:
                    sock.sendall(data)
                sock.settimeout(20)
                reply = sock.recv(4096)
                assert b"running" not in reply
    finally:
        os.close(null)
    assert server.process.poll() is None
    assert server.served() == []
    assert server.log().count("refused:") >= 5, server.log()
    after = client(cache, "build", "-o", "oci:out", cwd=project)
    assert after.returncode == 0 and len(server.served()) == 1


def test_one_server_per_cache_and_stop(server: Server, cache: Path, tmp_path: Path) -> None:
    second = subprocess.run([*LAUNCH, "serve"], env=_env(cache), capture_output=True, text=True,
                            timeout=60, check=False)
    assert second.returncode == 3
    assert second.stderr.strip().endswith("another xarch server is running for this cache "
                                          "(`xarch serve --stop` stops it)")
    stop = subprocess.run([*LAUNCH, "serve", "--stop"], env=_env(cache), capture_output=True, text=True,
                          timeout=60, check=False)
    assert stop.returncode == 0 and "stopped" in stop.stderr
    server.process.wait(timeout=30)
    assert not (cache / "server" / "socket").exists()
    again = subprocess.run([*LAUNCH, "serve", "--stop"], env=_env(cache), capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode == 0 and "no server was running" in again.stderr


def test_an_idle_server_exits(cache: Path, tmp_path: Path) -> None:
    running = Server(cache, tmp_path / "serve.log", "--idle", "1")
    try:
        assert running.process.wait(timeout=30) == 0
        assert "no command for 1 s" in running.log()
        assert not (cache / "server" / "socket").exists()
    finally:
        running.stop()


def test_a_folder_where_the_socket_goes_is_one_line(cache: Path) -> None:
    (cache / "server" / "socket").mkdir(parents=True)
    (cache / "server").chmod(0o700)
    refused = subprocess.run([*LAUNCH, "serve"], env=_env(cache), capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode == 3
    assert refused.stderr == f"xarch: error: {cache}/server/socket: cannot listen there: Is a directory\n"


def test_a_folder_others_may_enter_is_not_used(cache: Path, tmp_path: Path, project: Path) -> None:
    (cache / "server").mkdir(parents=True, mode=0o755)
    (cache / "server").chmod(0o755)
    refused = subprocess.run([*LAUNCH, "serve"], env=_env(cache), capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode == 3
    assert refused.stderr == (f"xarch: error: {cache}/server: not a folder of this user's that only it may "
                              "enter (mode 0700); the server will not listen there\n")
    # a socket planted there (another user's server, say) is not used by clients
    planted = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    planted.bind(str(cache / "server" / "socket"))
    planted.listen(1)
    try:
        built = client(cache, "build", "-o", "oci:out", cwd=project)
        assert built.returncode == 0, built.stderr
        planted.settimeout(0.1)
        with pytest.raises(TimeoutError):
            planted.accept()
    finally:
        planted.close()


def test_another_user_cannot_reach_the_server(server: Server, cache: Path, tmp_path: Path) -> None:
    need_root("switching to nobody")
    def check(folder: Path) -> None:
        from xarch.server.client import delegate

        os.environ["XARCH_CACHE"] = str(cache)
        assert delegate(["xarch", "build", "-f", str(folder / "xarch.yaml")]) is None

    tmp_path.chmod(0o755)
    cache.chmod(0o755)
    as_nobody(check, tmp_path)
    assert server.served() == []
