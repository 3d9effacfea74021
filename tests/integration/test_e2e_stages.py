"""End to end: recipe stages (steps, copy between stages, copy into the image) through the real CLI.

The stage mechanics (copy, modes, failures, network, symlinks) run natively for the
host's platform in a root whose only file is the host's static busybox as /bin/sh, so they
need no archive; cross builds from locked packages are in test_e2e_cross.py; the emulate
and native builds of examples/hello-c use the Debian mirror and its lock, and are slow.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, REPO, error_lines, image_files, xarch, xarch_ok
from tests.support.needs import need_tool, not_applicable
from tests.support.rootfs_helpers import PongServer
from tests.support.stages import HOST, SHELL, write_recipe
from xarch import platforms

HELLO_C = """#include <stdio.h>
int main(void) { puts("hello from a stage"); return 0; }
"""

STAGE_RECIPE = f"""\
name: stage-e2e
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      - run: |
          cp hello.c hello
          mkdir -p "/out/share"
          cp hello "/out/hello"
          echo data > "/out/share/data.txt"
          chmod 0600 "/out/share/data.txt"
copy:
  - {{from: "build:/out/hello", dst: /usr/bin/hello, mode: "0750", owner: "1234:5678"}}
  - {{from: "build:/out/share", dst: /usr/share/hello, owner: "7:8"}}
config:
  entrypoint: ["/usr/bin/hello"]
"""


# An arm64 stage with steps and nothing else: no shell for emulation, and not native here.
NO_SHELL_RECIPE = f"""\
name: no-shell
platforms: [arm64]
epoch: {EPOCH}
stages:
  build:
    steps:
      - run: echo hello > /hello
copy:
  - {{from: "build:/hello", dst: /hello}}
"""


@pytest.fixture
def stage_build(tmp_path: Path, busybox_shell: None) -> tuple[Path, dict]:
    recipe = write_recipe(tmp_path / "src", STAGE_RECIPE, **{"hello.c": HELLO_C})
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    return out, image_files(out, HOST)


def test_nothing_of_the_stage_reaches_the_image(stage_build: tuple[Path, dict]) -> None:
    _, files = stage_build
    assert sorted(files) == ["usr", "usr/bin", "usr/bin/hello", "usr/share", "usr/share/hello",
                             "usr/share/hello/data.txt"]


def test_copy_mode_and_owner_overrides_apply(stage_build: tuple[Path, dict]) -> None:
    _, files = stage_build
    hello = files["usr/bin/hello"]
    assert (hello.mode, hello.uid, hello.gid) == (0o750, 1234, 5678)
    # owner applies to a folder and all below; without mode each keeps the step's own mode.
    data = files["usr/share/hello/data.txt"]
    assert (data.mode, data.uid, data.gid, data.data) == (0o600, 7, 8, b"data\n")
    assert (files["usr/share/hello"].uid, files["usr/share/hello"].gid) == (7, 8)


def test_failing_step_names_stage_step_exit_code_and_writes_nothing(tmp_path: Path,
                                                                   busybox_shell: None) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: failing
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    source: code  # not the recipe's folder: editing xarch.yaml below does not change /src
    steps:
      - run: mkdir -p "/out" && echo fine > "/out/ok"
      - run: |
          for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo "line $i"; done
          echo "the compiler said no" >&2
          exit 7
copy:
  - {{from: "build:/out/ok", dst: /ok}}
""")
    (recipe.parent / "code").mkdir()
    (recipe.parent / "code" / "README").write_text("the steps' source\n")
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("xarch: error: ")
    assert "stage 'build' step 2" in lines[0]
    assert "exit code 7" in lines[0]
    tail = "\n".join(lines[1:])
    assert "line 25" in tail and "the compiler said no" in tail
    assert "Traceback" not in result.stderr
    assert not out.exists()
    cache = tmp_path / "cache"
    assert not list((cache / "images").glob("*")), "a failed build left an image cache entry"
    # Step 1 succeeded and is kept for the next try; the failed step 2 is not.
    assert len(list((cache / "steps").iterdir())) == 1
    recipe.write_text(recipe.read_text().replace("exit 7", "exit 0"))
    fixed = xarch_ok("build", "-f", str(recipe), "-v", "-o", f"oci:{out}", cache=cache)
    assert "build step 1/2: cached" in fixed.stderr, fixed.stderr
    assert "build step 2/2: running" in fixed.stderr
    assert image_files(out, HOST)["ok"].data == b"fine\n"


@pytest.mark.parametrize("network", [False, True])
def test_a_step_reaches_the_network_only_with_network_true(tmp_path: Path, busybox_shell: None,
                                                          pong_server: PongServer, network: bool) -> None:
    connect = f"nc -w 5 127.0.0.1 {pong_server.port} </dev/null"  # busybox's nc
    recipe = write_recipe(tmp_path / "src", f"""\
name: net
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  fetch:
{SHELL}    steps:
      - network: {str(network).lower()}
        run: |
          mkdir -p "/out"
          {connect} > "/out/answer"
copy:
  - {{from: "fetch:/out/answer", dst: /answer}}
""")
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    if network:
        assert result.returncode == 0, result.stderr
        assert image_files(out, HOST)["answer"].data == b"pong\n"
    else:
        assert result.returncode == 2, result.stderr
        lines = error_lines(result)
        assert "stage 'fetch' step 1" in lines[0]
        # It failed for the right reason: the connection, in a network namespace of its own.
        assert any(word in "\n".join(lines[1:]) for word in ("refused", "unreachable")), result.stderr
        assert not out.exists()


def test_stages_copy_from_stages_into_the_image(tmp_path: Path, busybox_shell: None) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: chain
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  a:
{SHELL}    steps:
      - run: mkdir -p "/out" && echo "from a" > "/out/a.txt"
  b:
{SHELL}    copy:
      - {{from: "a:/out/a.txt", dst: /in/a.txt}}
    steps:
      - run: |
          mkdir -p "/out"
          cat "/in/a.txt" > "/out/b.txt"
          echo "and b" >> "/out/b.txt"
copy:
  - {{from: "b:/out/b.txt", dst: /b.txt}}
""")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    files = image_files(out, HOST)
    assert files["b.txt"].data == b"from a\nand b\n"
    assert sorted(files) == ["b.txt"]  # neither stage's /in nor /out ships


def test_a_cycle_of_stages_is_a_one_line_recipe_error(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: cycle
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  a:
    copy:
      - {{from: "b:/x", dst: /x}}
  b:
    copy:
      - {{from: "a:/y", dst: /y}}
copy:
  - {{from: "a:/x", dst: /x}}
""")
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"xarch: error: {recipe}:5: stages.a: ")
    assert "cycle" in lines[0] and "a → b → a" in lines[0]
    assert not out.exists()


def test_copy_from_a_missing_path_is_one_clear_error(tmp_path: Path, busybox_shell: None) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: missing
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      - run: mkdir -p "/out" && echo x > "/out/real"
copy:
  - {{from: "build:/out/real", dst: /real}}
  - {{from: "build:/out/imaginary", dst: /imaginary}}
""")
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "copy[1]" in lines[0] and "build:/out/imaginary" in lines[0]
    assert "/out/imaginary does not exist in the stage" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("strategy", ["emulate", "native"])
def test_a_strategy_that_cannot_run_the_stage_is_one_line(tmp_path: Path, strategy: str) -> None:
    # natively impossible on another host, under emulation no shell
    if strategy == "native" and HOST == "arm64":
        not_applicable("native arm64 is possible on this (arm64) host")
    recipe = write_recipe(tmp_path / "src", NO_SHELL_RECIPE)
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "--strategy", strategy, "-o", f"oci:{out}",
                   cache=tmp_path / "cache")
    # native: the host cannot (exit 3), checked before anything else; emulate: the stage has no shell.
    assert result.returncode == (3 if strategy == "native" else 2), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xarch: error: "), result.stderr
    assert not out.exists()


def test_a_cross_stage_without_an_archive_is_a_recipe_error(tmp_path: Path) -> None:
    text = NO_SHELL_RECIPE.replace("  build:\n", "  build:\n    cross: true\n")
    recipe = write_recipe(tmp_path / "src", text)
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}",
                   cache=tmp_path / "cache")
    assert result.returncode == 2
    assert result.stderr == (f"xarch: error: {recipe}:6: stages.build.cross: a cross stage runs in a root of "
                             "locked Debian packages (the cross toolchain): add sources.debian\n")


def test_a_stage_without_a_shell_under_emulation_names_the_stage(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "src", NO_SHELL_RECIPE)
    result = xarch("build", "-f", str(recipe), "-q", "--strategy", "emulate", "-o",
                   f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    assert result.returncode == 2
    assert "xarch-build-" not in result.stderr
    assert "stage 'build'" in result.stderr or "stages.build" in result.stderr


def test_copy_never_reads_the_host_through_a_stage_symlink(tmp_path: Path, busybox_shell: None) -> None:
    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    (host_dir / "secret").write_text("a file of the host, not of the stage\n")
    recipe = write_recipe(tmp_path / "src", f"""\
name: symlink-read
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      # In the stage, /out/dir means the stage's own {host_dir}, which does not exist.
      - run: mkdir -p "/out" && ln -s {host_dir} "/out/dir"
copy:
  - {{from: "build:/out/dir/secret", dst: /secret}}
""")
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert not (out.exists() and "secret" in image_files(out, HOST)), "the host's file is in the image"
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_stage_root_is_never_written_outside_itself(tmp_path: Path, busybox_shell: None) -> None:
    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    recipe = write_recipe(tmp_path / "src", f"""\
name: symlink-write
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  a:
{SHELL}    steps:
      - run: mkdir -p "/out" && ln -s {host_dir} "/out/link" && echo x > "/payload"
  b:
{SHELL}    copy:
      - {{from: "a:/out/link", dst: /opt/link}}
      - {{from: "a:/payload", dst: /opt/link/payload}}
    steps:
      - run: mkdir -p "/out" && ls "/opt" > "/out/listing"
copy:
  - {{from: "b:/out/listing", dst: /listing}}
""")
    xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    assert list(host_dir.iterdir()) == [], "the build wrote into a folder of the host"


# --- examples/hello-c with its locked Debian toolchain: the real mirror, slow ----------------


@pytest.fixture
def hello_c(tmp_path: Path) -> Path:
    target = tmp_path / "hello-c"
    shutil.copytree(REPO / "examples" / "hello-c", target, ignore=shutil.ignore_patterns("dist"))
    return target / "xarch.yaml"


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "arch"), [pytest.param("emulate", "arm64", marks=pytest.mark.qemu),
                                                pytest.param("cross", "arm64", marks=pytest.mark.qemu),
                                                ("native", "amd64")])
def test_hello_c_with_locked_toolchain(hello_c: Path, tmp_path: Path, strategy: str, arch: str) -> None:
    if strategy == "native" and platforms.host().name != arch:
        not_applicable(f"native {arch} needs an {arch} host")
    if strategy == "cross" and platforms.host().name == arch:
        not_applicable(f"cross {arch} needs another host")
    qemu = need_tool("qemu-aarch64-static") if arch == "arm64" else ""
    out = tmp_path / "out"
    result = xarch_ok("build", "-f", str(hello_c), "--locked", "--strategy", strategy, "--platform", arch,
                      "-o", f"oci:{out}", cache=tmp_path / "cache", timeout=1800)
    assert f"[{arch}] stage build: {strategy}" in result.stderr
    files = image_files(out, arch)
    assert sorted(files) == ["hello"]
    binary = tmp_path / "hello"
    binary.write_bytes(files["hello"].data)
    binary.chmod(0o755)
    command = [qemu, str(binary)] if arch == "arm64" else [str(binary)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    machine = {"arm64": "aarch64", "amd64": "x86_64"}[arch]
    assert run.stdout == f"Hello from C, built by xarch, running on {machine}\n"
