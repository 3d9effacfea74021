"""Minimal by tracing (xarch/trace/): real strace, the real step sandbox, real QEMU for arm64.

A small dynamically linked C server (built in a cross stage from the real Debian mirror's
packages) answers each connection; only the request `data` makes it open a data file. A probe
that sends `data` keeps the file; one that does not drops it, and `--check` with the first
probe then fails. Its kept libraries are exactly what readelf says it needs, on both arches.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, image_files, xarch, xarch_ok
from tests.support.needs import need_tool
from xarch.trace.syscalls import paths_used

SERVER_C = r"""#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9000),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8)) return 2;
    for (;;) {
        int c = accept(s, 0, 0);
        char line[64] = {0}, out[256] = "hello\n";
        read(c, line, sizeof line - 1);
        if (strncmp(line, "data", 4) == 0) {
            FILE *f = fopen("/usr/share/demo/data.txt", "r");
            if (!f) strcpy(out, "missing\n");
            else { size_t n = fread(out, 1, sizeof out - 1, f); out[n] = 0; fclose(f); }
        }
        write(c, out, strlen(out));
        close(c);
    }
}
"""

RECIPE = f"""\
name: opener
platforms: [amd64, arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
packages: [libc6]
stages:
  build:
    cross: true
    packages: [gcc, libc6-dev, dash, coreutils]
    steps:
      - run: |
          ${{CC:-gcc}} -O2 -o server server.c
          mkdir -p /out && cp server /out/server
copy:
  - {{from: "build:/out/server", dst: /usr/bin/server, mode: "0755"}}
files:
  - {{src: data.txt, dst: /usr/share/demo/data.txt}}
config:
  entrypoint: [/usr/bin/server]
  user: "1000:1000"
trace:
  probe: {{probe}}
  timeout: 10
"""

PROBE = ("import socket,sys; s=socket.create_connection(('127.0.0.1', 9000), 2); s.sendall(b'{ask}\\n'); "
         "sys.exit(0 if s.recv(256) == b'{want}' else 1)")


def _probe(ask: str, want: str) -> str:
    return json.dumps([sys.executable, "-c", PROBE.format(ask=ask, want=want.replace("\n", "\\n"))])


DATA = "the data\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    need_tool("strace")
    need_tool("nsenter")
    folder = tmp_path_factory.mktemp("trace")
    (folder / "server.c").write_text(SERVER_C)
    (folder / "data.txt").write_text(DATA)
    (folder / "xarch.yaml").write_text(RECIPE.replace("{probe}", _probe("data", DATA)))
    cache = tmp_path_factory.mktemp("cache")
    xarch_ok("lock", "-f", str(folder), cache=cache)
    return folder, cache


def _trace(folder: Path, cache: Path, ask: str, want: str, *args: str) -> subprocess.CompletedProcess[str]:
    text = (folder / "xarch.yaml").read_text().splitlines()
    text = [f"  probe: {_probe(ask, want)}" if line.startswith("  probe: ") else line for line in text]
    (folder / "xarch.yaml").write_text("\n".join(text) + "\n")
    return xarch("trace", "-f", str(folder), "--json", *args, cache=cache, timeout=900)


@pytest.mark.slow
@pytest.mark.qemu
def test_the_probe_decides_what_is_kept_and_check_catches_a_drop(project: tuple[Path, Path]) -> None:
    folder, cache = project
    traced = _trace(folder, cache, "data", DATA)
    assert traced.returncode == 0, traced.stderr
    report = json.loads(traced.stdout)
    record = (folder / "xarch.trace").read_text()
    for result in report["platforms"]:
        assert result["entries"] < result["full_entries"] and result["bytes"] < result["full_bytes"], result
    per_platform = record.split("  arm64:\n")
    assert len(per_platform) == 2, record
    for part in per_platform:
        assert "  - /usr/share/demo/data.txt\n" in part and "  - /usr/bin/server\n" in part, part
    assert _trace(folder, cache, "data", DATA, "--check").returncode == 0

    # The build keeps exactly the recorded paths' entries; the libraries are what readelf names.
    out = folder.parent / "out"
    xarch_ok("build", "-q", "-f", str(folder), "-o", f"oci:{out}", cache=cache)
    readelf = need_tool("readelf")
    for arch in ("amd64", "arm64"):
        files = image_files(out, arch)
        section = record.split(f"  {arch}:\n")[1].split("\n  arm64:")[0]
        listed = {line[len("  - /"):] for line in section.splitlines() if line.startswith("  - /")}
        assert set(files) - {"", "."} == listed, set(files) ^ listed
        binary = folder.parent / f"server-{arch}"
        binary.write_bytes(files["usr/bin/server"].data)
        dynamic = subprocess.run([readelf, "-d", "-l", str(binary)], capture_output=True, text=True,
                                 check=True).stdout
        needed = {line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line}
        interpreter = dynamic.split("[Requesting program interpreter: ")[1].split("]")[0]
        libraries = {Path(p).name for p, m in files.items()
                     if re.fullmatch(r"(lib|ld-linux).*\.so(\.[0-9]+)*", Path(p).name) and m.type == b"0"}
        assert libraries == needed | {Path(interpreter).name}, (arch, libraries, needed, interpreter)

    # A probe that never asks for the data drops the file ...
    assert _trace(folder, cache, "other", "hello\n", "--platform", "amd64").returncode == 0
    assert "/usr/share/demo/data.txt" not in (folder / "xarch.trace").read_text().split("  arm64:")[0]
    # ... and the first probe, against that minimized image, fails: exit 1, one line.
    failed = _trace(folder, cache, "data", DATA, "--check", "--platform", "amd64")
    assert failed.returncode == 1, failed.stderr
    assert "xarch: error: amd64: the probe did not succeed" in failed.stderr, failed.stderr
    assert "(the minimized image)" in failed.stderr


def test_strace_lines_become_paths() -> None:
    """The parser on the line forms strace 6 writes (-f -xx --pidns-translation)."""
    def hexed(text: str) -> str:
        return "".join(f"\\x{b:02x}" for b in text.encode())

    lines = [
        f'100 execve("{hexed("/usr/bin/host-tool")}", ["x"], 0x7ffd /* 3 vars */) = 0',
        f'100 openat(AT_FDCWD, "{hexed("/etc/host-only")}", O_RDONLY) = 3',
        f'101 execve("{hexed("/usr/bin/server")}", ["{hexed("server")}"], 0x7ff /* 1 var */) = 0',
        f'101 openat(AT_FDCWD, "{hexed("/etc/ld.so.cache")}", O_RDONLY|O_CLOEXEC <unfinished ...>',
        "100 +++ exited with 0 +++",
        "101 <... openat resumed>) = 3",
        f'101 chdir("{hexed("/srv")}") = 0',
        f'101 openat(AT_FDCWD, "{hexed("www/a b")}", O_RDONLY|O_DIRECTORY) = 4',
        f'101 newfstatat(4, "{hexed("index.html")}", {{st_mode=S_IFREG|0644, st_size=3}}, 0) = 0',
        "101 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD) = 2 /* 102 in strace's PID NS */",
        f'102 openat(AT_FDCWD, "{hexed("rel")}", O_RDONLY) = -1 ENOENT (No such file or directory)',
        f'102 readlink("{hexed("/proc/self/exe")}", "{hexed("/usr/bin/server")}", 4096) = 15',
        f'102 symlink("{hexed("target-text")}", "{hexed("/tmp/l")}") = 0',
        f'102 getxattr("{hexed("/bin/x")}", "{hexed("security.capability")}", NULL, 0) = -1 ENODATA',
        f'102 openat(AT_FDCWD, "{hexed("/cut")}"..., O_RDONLY) = -1 ENAMETOOLONG',
    ]
    used = paths_used(lines, starts=lambda path: path == "/usr/bin/server")
    assert used.paths == {"/usr/bin/server", "/etc/ld.so.cache", "/srv", "/srv/www/a b",
                          "/srv/www/a b/index.html", "/srv/rel", "/proc/self/exe", "/tmp/l", "/bin/x"}
    assert used.executed == {"/usr/bin/server"}
    assert used.truncated == 1
