"""The build-step sandbox (xarch/run/sandbox.py) under attack, with real namespaces.

Each escape attempt is a static C program (tests/support/escape.c) run as a step in a
busybox stage; a secret file and a marker folder on the host are open to every account,
so only the sandbox (not file permissions) stands between the step and them.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, REPO, error_lines, index_digest, manifests, xarch
from tests.support.needs import missing, need_root, need_tool
from tests.support.nobody import NOBODY, as_nobody
from xarch import platforms
from xarch.run import sandbox
from xarch.run.chroot import run_in_rootfs
from xarch.run.steps import fixed_env

ESCAPE_C = Path(__file__).parents[1] / "support" / "escape.c"


@pytest.fixture(scope="session")
def escape_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = need_tool("gcc")
    binary = tmp_path_factory.mktemp("escape") / "escape"
    subprocess.run([gcc, "-static", "-O2", "-o", str(binary), str(ESCAPE_C)], check=True)
    return binary


@pytest.fixture
def host_files() -> Iterator[tuple[Path, Path, str]]:
    """(secret file any account may read, marker path in a folder any account may write, token)."""
    base = Path(tempfile.mkdtemp(prefix="xarch-host-"))
    try:
        base.chmod(0o755)
        token = secrets.token_hex(16)
        secret = base / "secret.txt"
        secret.write_text(token + "\n")
        secret.chmod(0o644)
        (base / "drop").mkdir()
        (base / "drop").chmod(0o777)
        yield secret, base / "drop" / "host-marker", token
    finally:
        shutil.rmtree(base, ignore_errors=True)


def step(rootfs: Path, text: str, network: bool = False) -> tuple[int, list[str]]:
    lines: list[str] = []
    result = run_in_rootfs(rootfs, text, fixed_env(platforms.host(), EPOCH), cwd="/", network=network,
                           log=lines.append)
    return result.exit_code, lines


@pytest.mark.parametrize("mode", ["chroot", "proc1", "mount", "fd", "handle"])
def test_an_escaping_step_neither_reads_nor_writes_the_host(mode: str, host_rootfs: Path, escape_binary: Path,
                                                             host_files: tuple[Path, Path, str]) -> None:
    secret, marker, token = host_files
    shutil.copy2(escape_binary, host_rootfs / "bin" / "escape")
    argv = ["/bin/escape", mode, str(secret), str(marker)]
    if mode == "handle":
        got = subprocess.run([str(escape_binary), "gethandle", str(secret)], capture_output=True, text=True,
                             check=True)
        handle = got.stdout.strip()
        argv.append(handle)
    exit_code, lines = step(host_rootfs, " ".join(argv))
    assert exit_code == 0, lines
    assert any(line.startswith(mode) for line in lines), lines  # the attempt really ran
    assert not any(token in line for line in lines), lines
    assert not marker.exists()
    assert not any("WROTE" in line for line in lines), lines


def test_a_step_is_uid_0_of_a_user_namespace_never_the_hosts_root(host_rootfs: Path) -> None:
    exit_code, lines = step(host_rootfs, "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")
    assert exit_code == 0, lines
    uid, gid, uid_map, gid_map = lines
    assert (uid, gid) == ("0", "0")
    # One id mapped: 0 inside is the caller (unprivileged) or, as root, the sandbox id.
    assert uid_map.split() == ["0", str(sandbox.host_owner()), "1"]
    assert gid_map.split()[:2] == ["0", str(sandbox.host_owner())]
    assert sandbox.host_owner() != 0
    if os.geteuid() == 0:
        assert sandbox.host_owner() == sandbox.sandbox_id()
    # What the step wrote is the sandbox's on disk, 0 inside.
    exit_code, _ = step(host_rootfs, "echo x > /written")
    assert (host_rootfs / "written").stat().st_uid == sandbox.host_owner()


CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6,
    "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_CHROOT": 18, "CAP_SETFCAP": 31,
}


def test_a_step_has_podmans_rootless_capabilities_and_no_new_privs(host_rootfs: Path) -> None:
    exit_code, lines = step(host_rootfs, "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
    assert exit_code == 0, lines
    status = dict(line.split(":\t") for line in lines)
    expected = sum(1 << CAP_NUMBERS[name] for name in sandbox.PODMAN_CAPS)
    assert int(status["CapEff"], 16) == expected
    assert int(status["CapBnd"], 16) == expected
    assert status["NoNewPrivs"] == "1"


def test_a_step_sees_a_minimal_dev_its_own_proc_and_only_lo(host_rootfs: Path) -> None:
    exit_code, lines = step(host_rootfs, "ls /dev; echo --; ls /proc | grep -c '^[0-9]'; echo --; "
                                         "tail -n +3 /proc/net/dev | cut -d: -f1; echo --; hostname")
    assert exit_code == 0, lines
    text = "\n".join(lines)
    dev, processes, interfaces, hostname = (part.split() for part in text.split("--"))
    assert set(dev) <= {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                        "stdout", "tty", "urandom", "zero"}
    assert {"null", "zero", "full", "random", "urandom", "tty", "fd"} <= set(dev)
    assert int(processes[0]) <= 5  # its own PID namespace: the sandbox's init, the shell, ls, grep
    assert interfaces == ["lo"]
    assert hostname == ["xarch"]


def test_a_network_step_shares_the_hosts_interfaces(host_rootfs: Path) -> None:
    exit_code, lines = step(host_rootfs, "tail -n +3 /proc/net/dev | cut -d: -f1", network=True)
    assert exit_code == 0, lines
    host_interfaces = sorted(os.listdir("/sys/class/net"))
    assert sorted(line.strip() for line in lines) == host_interfaces


# --- host-independent bytes: the same image whoever builds ----------------------------------------

STAGE_RECIPE = f"""\
name: owners
platforms: [{platforms.host().name}]
epoch: {EPOCH}
stages:
  build:
    files:
      - {{src: busybox, dst: /bin/sh, mode: "0755"}}
    steps:
      - run: |
          mkdir -p /out/d
          echo a > /out/a
          echo b > /out/d/b
copy:
  - {{from: "build:/out/a", dst: /a}}
  - {{from: "build:/out/d", dst: /d}}
"""


def _build(recipe: Path, out: Path, cache: Path, as_nobody: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.update(XARCH_CACHE=str(cache), PYTHONPATH=str(REPO), HOME=str(cache))
    argv = [sys.executable, "-m", "xarch.cli", "build", "-q", "-f", str(recipe), "-o", f"oci:{out}"]
    if as_nobody:
        # As verify's `user` variation: nobody may read the interpreter under /root, write nothing of root's.
        argv = [need_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *argv]
    return subprocess.run(argv, env=env, cwd="/", capture_output=True, text=True, timeout=600, check=False)


def _owners(layout: Path) -> dict[str, tuple[int, int]]:
    blobs = layout / "blobs" / "sha256"
    manifest_digest = next(iter(manifests(layout).values()))
    manifest = json.loads((blobs / manifest_digest.removeprefix("sha256:")).read_bytes())
    result = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].removeprefix("sha256:")) as tar:
            for member in tar.getmembers():
                result[member.name] = (member.uid, member.gid)
    return result


def test_root_and_an_unprivileged_account_build_the_same_digest() -> None:
    need_root("to run one of the two builds as another account")
    busybox = need_tool("busybox")
    base = Path(tempfile.mkdtemp(prefix="xarch-owners-"))  # pytest's tmp folders are root's only
    try:
        base.chmod(0o755)
        recipe_dir = base / "recipe"
        recipe_dir.mkdir()
        (recipe_dir / "xarch.yaml").write_text(STAGE_RECIPE)
        shutil.copy2(busybox, recipe_dir / "busybox")
        nobody = base / "nobody"
        nobody.mkdir()
        os.chown(nobody, 65534, 65534)
        as_root = _build(recipe_dir / "xarch.yaml", base / "root-out", base / "root-cache", as_nobody=False)
        assert as_root.returncode == 0, as_root.stderr
        as_user = _build(recipe_dir / "xarch.yaml", nobody / "out", nobody / "cache", as_nobody=True)
        assert as_user.returncode == 0, as_user.stderr
        owners = _owners(base / "root-out")
        assert owners["a"] == (0, 0) and owners["d/b"] == (0, 0), owners
        assert _owners(nobody / "out") == owners
        assert index_digest(nobody / "out") == index_digest(base / "root-out")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# What a build imports of the standard library after start-up (found with sys.modules at exit).
STDLIB_A_BUILD_IMPORTS = (
    "colorsys", "concurrent.futures", "concurrent.futures.thread", "contextvars", "difflib", "encodings.idna",
    "fractions", "http.cookiejar", "http.cookies", "importlib.readers", "mimetypes", "mmap", "pdb",
    "stringprep", "sysconfig", "tomllib", "zoneinfo",
)


def test_the_command_without_root_builds_on_an_overlay_in_a_user_namespace_of_its_own() -> None:
    """`xarch build` (its main()) by nobody with no capability at all, unlike the build above (which
    keeps one, so its roots are copied): the command enters a user namespace mapping nobody to
    itself, its stage root is an overlay of a farm, and the image is the root build's, byte for byte."""
    need_root("to run one of the two builds as another account")
    busybox = need_tool("busybox")
    need_tool("bwrap")
    base = Path(tempfile.mkdtemp(prefix="xarch-owners-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        recipe = base / "recipe" / "xarch.yaml"
        recipe.parent.mkdir()
        recipe.write_text(STAGE_RECIPE)
        shutil.copy2(busybox, recipe.parent / "busybox")
        nobody = base / "nobody"
        nobody.mkdir()
        os.chown(nobody, NOBODY, NOBODY)
        as_root = _build(recipe, base / "root-out", base / "root-cache", as_nobody=False)
        assert as_root.returncode == 0, as_root.stderr

        def check(folder: Path) -> None:
            from xarch.cli.main import main
            from xarch.run import overlay

            os.environ.pop("SOURCE_DATE_EPOCH", None)
            os.environ.update(XARCH_CACHE=str(folder / "cache"), HOME=str(folder / "cache"))
            os.chdir("/")
            sys.argv = ["xarch", "build", "-q", "-f", str(recipe), "-o", f"oci:{folder / 'out'}"]
            try:
                main()
            except SystemExit as end:
                assert end.code in (0, None), f"xarch build exited {end.code}"
            assert overlay.available() and overlay.opaque_xattr() == "user.overlay.opaque"
            assert Path("/proc/self/uid_map").read_text().split() == [str(NOBODY), str(NOBODY), "1"]
            assert list((folder / "cache" / "trees").glob("farm-*/root/bin/sh")), "no farm was made"

        for name in STDLIB_A_BUILD_IMPORTS:  # nobody cannot read this Python's own files under /root
            importlib.import_module(name)
        as_nobody(check, nobody)
        assert _owners(nobody / "out") == _owners(base / "root-out")
        assert index_digest(nobody / "out") == index_digest(base / "root-out")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_verify_of_hello_c_under_every_variation_is_reproducible() -> None:
    """The issue's own input: `xarch verify` on examples/hello-c, every variation, `user` included
    (root only: the user variation becomes nobody). About 4 minutes on 2 cores."""
    need_root("the user variation becomes nobody")
    recipe = REPO / "examples" / "hello-c" / "xarch.yaml"
    argv = [sys.executable, "-m", "xarch.cli", "verify", "-f", str(recipe), "--json"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO, timeout=2400)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    statuses = {v["name"]: v["status"] for v in data["variations"]}
    assert "user" in statuses and len(statuses) >= 10, statuses
    assert set(statuses.values()) == {"same"}, statuses
    assert data["identical"] is True


def test_a_host_without_bubblewrap_is_a_one_line_host_error(tmp_path: Path) -> None:
    """PATH holds every host tool but bwrap: `xarch build` exits 3 with one line saying what to install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name != "bwrap" and not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(Path(folder) / name)
    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    (recipe_dir / "xarch.yaml").write_text(STAGE_RECIPE)
    shutil.copy2(need_tool("busybox"), recipe_dir / "busybox")
    result = xarch("build", "-q", "-f", str(recipe_dir / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out'}",
                   cache=tmp_path / "cache", extra_env={"PATH": str(bin_dir)})
    assert result.returncode == 3, result.stderr
    assert error_lines(result) == [
        "xarch: error: no way to run build steps on this host: bubblewrap (bwrap) is not installed "
        "(fix: apt-get install bubblewrap)"
    ]
    assert not (tmp_path / "out").exists()


def test_a_host_without_user_namespaces_is_a_one_line_host_error(tmp_path: Path) -> None:
    """user.max_user_namespaces=0, set inside a user namespace of its own (the host's stays as is)."""
    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    (recipe_dir / "xarch.yaml").write_text(STAGE_RECIPE)
    shutil.copy2(need_tool("busybox"), recipe_dir / "busybox")
    for path in (tmp_path, recipe_dir):
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.update(XARCH_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    build = [sys.executable, "-m", "xarch.cli", "build", "-q", "-f", str(recipe_dir / "xarch.yaml"),
             "-o", f"oci:{tmp_path / 'out'}"]
    shell = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    argv = [need_tool("unshare"), "--user", "--map-root-user", "sh", "-c", shell, "limit", *build]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300)
    if result.returncode in (126, 127) or ("max_user_namespaces" in result.stderr
                                           and "xarch: error" not in result.stderr):
        # Not root: the namespace may not lower the limit, or reach an interpreter under /root.
        missing(f"cannot run the build in a limited user namespace here: {result.stderr.strip()}")
    assert result.returncode == 3, result.stderr
    (line,) = error_lines(result)
    assert line.startswith("xarch: error: no way to run build steps on this host: bwrap cannot create a user "
                           "namespace here (bwrap: Creating new namespace failed"), line
    assert line.endswith(f"(fix: {sandbox.FIX_USERNS})"), line
    assert not (tmp_path / "out").exists()
