"""xarch/trace/runner.py with hostile trace: settings, on the real sandbox, strace and nsenter.

A tree of the host's static busybox stands for an image: `busybox httpd` is the server and
`busybox wget` the probe, so no Debian image is built and each run takes a second or two.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import REPO
from tests.support.needs import need_root, need_tool
from xarch.errors import ExitCode, RecipeError
from xarch.oci.tree import Entry, Tree
from xarch.trace import runner
from xarch.trace.runner import ProbeMissing, find_program, require_tools, user_ids

PORT = 9000


def busybox_tree(busybox: Path) -> Tree:
    tree = Tree()
    tree.add(Entry("bin/busybox", "file", 0o755, source=busybox))
    for name in ("sh", "httpd"):
        tree.add(Entry(f"bin/{name}", "symlink", 0o777, linkname="busybox"))
    tree.add(Entry("usr/bin/loop", "symlink", 0o777, linkname="/usr/bin/loop"))
    tree.add(Entry("etc/passwd", "file", 0o644, data=b"root:x:0:0::/:/bin/sh\nweb:x:101:102::/:/bin/sh\n"))
    tree.add(Entry("etc/group", "file", 0o644, data=b"root:x:0:\nweb:x:102:\n"))
    tree.add(Entry("www/index.html", "file", 0o644, data=b"hello\n"))
    for path in ("bin", "usr", "usr/bin", "etc", "www"):
        tree.add(Entry(path, "dir", 0o755))
    return tree


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    """A folder every account may enter (pytest's are root's only), holding busybox."""
    folder = Path(tempfile.mkdtemp(prefix="xarch-trace-runner-"))
    folder.chmod(0o755)
    shutil.copy2(need_tool("busybox"), folder / "busybox")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_program_is_found_as_the_kernel_and_execvp_would(base: Path) -> None:
    tree = busybox_tree(base / "busybox")
    assert find_program(tree, "/bin/sh", "", "/") == "bin/busybox"
    assert find_program(tree, "httpd", "/usr/bin:/bin", "/") == "bin/busybox"
    assert find_program(tree, "./bin/sh", "", "/") == "bin/busybox"
    assert find_program(tree, "bin/sh", "", "/www") is None
    for missing in ("/bin", "/nope", "nope", "/usr/bin/loop", "/etc/passwd/x"):
        assert find_program(tree, missing, "/usr/bin:/bin", "/") is None, missing


def test_a_user_the_image_lacks_names_the_recipe(base: Path) -> None:
    tree = busybox_tree(base / "busybox")
    assert user_ids("web", tree) == (101, 102)
    assert user_ids("web:root", tree) == (101, 0)
    for user, file in (("nobody", "/etc/passwd"), ("web:staff", "/etc/group")):
        with pytest.raises(RecipeError) as caught:
            user_ids(user, tree, "xarch.yaml: ")
        assert str(caught.value).startswith("xarch.yaml: config.user: ") and file in str(caught.value)


def test_a_probe_this_host_lacks_is_a_host_error_before_any_build() -> None:
    cases = (("xarch-no-such-probe", "is not in PATH"), ("/nonexistent/curl", "not an executable"))
    for program, says in cases:
        with pytest.raises(ProbeMissing) as caught:
            require_tools(False, [program, "http://127.0.0.1/"])
        assert caught.value.exit_code == ExitCode.HOST and says in str(caught.value), str(caught.value)
    with pytest.raises(RecipeError, match=r"trace.probe\[0\]: the probe's program is empty"):
        require_tools(False, [" ", "x"])
    require_tools(False, ["sh", "-c", "true"])
    require_tools(False, None)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("script", ["sleep 300 & echo $! > {f}; exit 0",
                                    "sleep 300 & echo $! > {f}; sleep 301"])
def test_a_probe_leaves_no_process_behind(tmp_path: Path, script: str) -> None:
    """A probe's children die with the attempt, whether it succeeded (its child still holding
    its output) or timed out: no stray process, no sandbox network namespace kept alive."""
    marker = tmp_path / "pid"
    started = time.monotonic()
    status, _ = runner._probe_once(["sh", "-c", script.format(f=marker)], 3.0)
    assert time.monotonic() - started < 10
    assert status == (0 if "exit 0" in script else None)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"the probe's child {pid} outlived it"


RUN = """
import json, sys
from pathlib import Path
from xarch import platforms
from tests.integration.test_trace_runner import busybox_tree
from xarch.trace.runner import run_tree
base = Path(sys.argv[1])
host = platforms.host()
outcome = run_tree(busybox_tree(base / "busybox"), host, host,
                   ["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:%d", "-h", "/www"], {"PATH": "/bin"}, "/",
                   ["%s", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:%d/"], 20, base / sys.argv[2],
                   traced=True, ids=(101, 102))
print(json.dumps({"passed": outcome.passed, "detail": outcome.detail,
                  "trace": outcome.trace.read_text(errors="replace") if outcome.trace else ""}))
"""


@pytest.mark.parametrize("account", ["root", "nobody"])
def test_the_probe_reaches_the_server_as_root_and_unprivileged(base: Path, account: str) -> None:
    """Unprivileged, the probe must enter the user namespace that owns the sandbox's network
    namespace: bwrap nests the command one user namespace further (it maps --uid after
    mounting /dev), and nsenter from there was refused (`reassociate to namespace 'ns/net'`)."""
    need_root("to run the sandbox as root and as another account")
    need_tool("strace")
    need_tool("nsenter")
    busybox = need_tool("busybox")
    argv = [sys.executable, "-c", RUN % (PORT, busybox, PORT), str(base), f"run-{account}"]
    if account == "nobody":
        # As test_sandbox's unprivileged build: nobody may read the interpreter under /root.
        argv = [need_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *argv]
        (base / f"run-{account}").mkdir()
        os.chown(base / f"run-{account}", 65534, 65534)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(base)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["passed"], outcome["detail"]
    assert "execve" in outcome["trace"]


RECIPE = """\
name: bb
platforms: [amd64]
epoch: 1700000000
files:
  - {src: busybox, dst: /bin/busybox, mode: "0755"}
  - {src: www, dst: /www}
config:
  entrypoint: ["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:9000", "-h", "/www"]
  user: "USER"
trace:
  run: RUN
  probe: ["busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9000/PAGE"]
  timeout: 5
"""


def _project(folder: Path, busybox: str, run: str = "null", user: str = "0:0", page: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    shutil.copy2(busybox, folder / "busybox")
    (folder / "www").mkdir(exist_ok=True)
    (folder / "www" / "index.html").write_text("hi\n")
    (folder / "www" / "unused.txt").write_text("never asked for\n")
    (folder / "xarch.yaml").write_text(RECIPE.replace("RUN", run).replace("USER", user).replace("PAGE", page))
    return folder


def _trace(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from tests.support.e2e import xarch

    return xarch("trace", "-f", str(folder), *args, cache=folder / "cache", extra_env={"TMPDIR": str(folder)},
                 timeout=120)


def _one_line(result: subprocess.CompletedProcess[str], code: int, *says: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("xarch: error: ")]
    assert len(errors) == 1 and all(part in errors[0] for part in says), result.stderr
    assert "Traceback" not in result.stderr


def test_trace_exit_codes_say_whose_fault_it_is(tmp_path: Path) -> None:
    """2 for the recipe (a program or user the image lacks, a probe that fails on the full
    image), 3 for the host (a probe it lacks), 1 only for --check's verdict; nothing written."""
    need_tool("strace")
    need_tool("nsenter")
    busybox = need_tool("busybox")
    folder = _project(tmp_path / "p", busybox, run='["/bin/nope"]')
    _one_line(_trace(folder), 2, "xarch.yaml: trace.run: '/bin/nope' is not a program in the amd64 image")
    _project(folder, busybox, user="web")
    _one_line(_trace(folder), 2, "xarch.yaml: config.user: 'web' is not in the image's /etc/passwd")
    recipe = (folder / "xarch.yaml").read_text()
    (folder / "xarch.yaml").write_text(recipe.replace('["busybox"', '["xarch-nope"'))
    _one_line(_trace(folder), 3, "trace.probe: 'xarch-nope' is not in PATH")
    _project(folder, busybox, page="missing.html")
    _one_line(_trace(folder), 2, "amd64: the probe did not succeed within 5 s", "(the full image)")
    assert not (folder / "xarch.trace").exists()

    # A broken record does not stop the command that rewrites it; --check then passes, and
    # fails (the verdict, exit 1) once the probe asks for what the trace did not see.
    (folder / "xarch.trace").write_text("version: 1\nplatforms: {bogus: [/x]}\n")
    _project(folder, busybox)
    traced = _trace(folder, "--json")
    assert traced.returncode == 0, traced.stderr
    assert "note: " in traced.stderr and "platforms.bogus" in traced.stderr
    [result] = json.loads(traced.stdout)["platforms"]
    assert result["platform"] == "amd64" and result["entries"] < result["full_entries"], result
    assert _trace(folder, "--check").returncode == 0
    (folder / "www" / "other.html").write_text("other\n")
    _project(folder, busybox, page="other.html")
    _one_line(_trace(folder, "--check"), 1, "(the minimized image)")
    assert not [name for name in os.listdir(folder) if name.startswith("xarch-")], os.listdir(folder)
