"""A stage's `python:` section: wheels locked per platform, installed into the stage root.

The wheels come from a PEP 503 index on 127.0.0.1 (tests/support/pyindex.py): `tinygen`, pure,
whose `write()` records its version and which machine's `tinybin` extension sits beside it
(found with importlib, never imported: its .so is an ELF header only), `tinybin` for x86_64
and aarch64, and `onlyamd` for x86_64 only. The fast tests give the stage's Python version and
glibc and no Debian packages; the end-to-end ones take Debian's python3-minimal from the real
mirror and run a step that imports the locked package, natively for amd64 and under QEMU for
arm64, with no pip and no network.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.e2e import EPOCH, error_lines, image_files, index_digest, xarch
from tests.support.needs import need_binfmt, need_tool, not_applicable
from tests.support.pyindex import PackageIndex, elf_header, make_wheel
from xarch import platforms

SITE = "usr/local/lib/python3.11/dist-packages"
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
MACHINE_OF = {"amd64": "x86_64", "arm64": "aarch64"}

TINYGEN = '''\
import importlib.util
import os

VERSION = {version!r}


def write(path):
    """PATH gets this version and the machine of the tinybin extension installed beside it."""
    folder = importlib.util.find_spec("tinybin").submodule_search_locations[0]
    (native,) = [name for name in os.listdir(folder) if name.endswith(".so")]
    with open(path, "w") as handle:
        handle.write(f"tinygen {{VERSION}} with {{native}}\\n")
'''


def add_tinygen(folder: Path, version: str) -> None:
    make_wheel(folder, "tinygen", version, "py3-none-any",
               {"tinygen/__init__.py": TINYGEN.format(version=version).encode()}, requires=("tinybin",))


@pytest.fixture(scope="module")
def wheel_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    add_tinygen(folder, "1.0")
    for machine in ("x86_64", "aarch64"):
        make_wheel(folder, "tinybin", "1.0", f"cp311-cp311-manylinux_2_17_{machine}.manylinux2014_{machine}",
                   {"tinybin/__init__.py": b"from tinybin import _native\n",
                    f"tinybin/_native.cpython-311-{machine}-linux-gnu.so": elf_header(machine)})
    make_wheel(folder, "onlyamd", "1.0", "cp311-cp311-manylinux_2_17_x86_64", {"onlyamd/__init__.py": b""})
    return folder


@pytest.fixture
def index(wheel_folder: Path, tmp_path: Path) -> Iterator[PackageIndex]:
    """A private copy of the index: a test that publishes a new version does it here."""
    folder = tmp_path / "index"
    shutil.copytree(wheel_folder, folder)
    served = PackageIndex(folder)
    yield served
    served.close()


def write_recipe(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "xarch.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "xarch.yaml"


def light_recipe(folder: Path, index: PackageIndex, **python: Any) -> Path:
    """A stage with python: and no Debian packages (its Python and glibc are given): the stage's
    dist-packages folder is copied into the image, so a build needs no steps and no mirror."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "python3.11").write_text("#!/bin/sh\n")  # the stage's interpreter (never run here)
    section = {"requirements": ["tinygen"], "interpreter": "/usr/bin/python3.11", "version": "3.11",
               "glibc": "2.36", "index_url": index.url, **python}
    return write_recipe(folder, {
        "name": "stagepy", "platforms": ["amd64", "arm64"], "epoch": EPOCH,
        "stages": {"gen": {"files": [{"src": "python3.11", "dst": "/usr/bin/python3.11", "mode": "0755"}],
                           "python": section}},
        "copy": [{"from": f"gen:/{SITE}", "dst": "/opt/site"}],
    })


def run(*args: str, cache: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # uv's own cache goes beside the test's xarch cache: nothing of the user's is read or written.
    return xarch(*args, cache=cache, extra_env={"UV_CACHE_DIR": str(cache / "uv")}, timeout=timeout)


def ok(*args: str, cache: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = run(*args, cache=cache, timeout=timeout)
    assert result.returncode == 0, f"xarch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def stage_section(lock: Path, stage: str = "gen") -> dict[str, Any]:
    return yaml.safe_load(lock.read_text())["python_stages"][stage]


# --- fast: no Debian, no steps ------------------------------------------------------------------


def test_a_stage_locks_its_own_wheels_per_platform_and_installs_them_into_its_root(
        index: PackageIndex, tmp_path: Path) -> None:
    path = light_recipe(tmp_path / "app", index)
    ok("lock", "-f", str(path), cache=tmp_path / "cache")
    data = yaml.safe_load((path.parent / "xarch.lock").read_text())
    assert "python" not in data  # the image has no python: section; the stage's has its own place
    section = data["python_stages"]["gen"]
    assert section["index_url"] == index.url and section["requirements"].startswith("sha256:")
    for platform, machine in MACHINE_OF.items():
        wheels = {w["name"]: w for w in section["platforms"][platform]["wheels"]}
        assert sorted(wheels) == ["tinybin", "tinygen"]
        assert machine in wheels["tinybin"]["filename"]
        assert section["platforms"][platform]["target"]["uv_platform"] == f"{machine}-manylinux_2_36"

    out = tmp_path / "out"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{out}", cache=tmp_path / "cache")
    for platform, machine in MACHINE_OF.items():
        files = image_files(out, platform)
        native = files[f"opt/site/tinybin/_native.cpython-311-{machine}-linux-gnu.so"]
        assert int.from_bytes(native.data[18:20], "little") == ELF_MACHINE[machine]
        assert b"VERSION = '1.0'" in files["opt/site/tinygen/__init__.py"].data
        assert files["opt/site/tinygen-1.0.dist-info/INSTALLER"].data == b"xarch\n"
        assert not [name for name in files if name.endswith(".pyc")]
    # An empty cache (every wheel fetched again) gives the same index.
    again = tmp_path / "again"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{again}", cache=tmp_path / "cache2")
    assert index_digest(again) == index_digest(out)


def test_locked_and_lock_check_name_the_stage_and_the_package_that_drifted(index: PackageIndex,
                                                                            tmp_path: Path) -> None:
    path = light_recipe(tmp_path / "app", index)
    cache = tmp_path / "cache"
    result = run("build", "-f", str(path), "--locked", "-o", f"oci:{tmp_path / 'out'}", cache=cache)
    assert result.returncode == 2
    assert error_lines(result) == ["xarch: error: --locked: xarch.lock does not match the recipe: "
                                   "stage gen: xarch.lock has no python wheels for it"]
    ok("lock", "-f", str(path), cache=cache)
    result = run("lock", "--check", "-f", str(path), cache=cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "python (stages): every pin is what the index resolves today" in result.stdout

    add_tinygen(Path(index.folder), "1.1")  # the index moves on; the recipe and the lock do not
    before = (path.parent / "xarch.lock").read_bytes()
    result = run("lock", "--check", "-f", str(path), cache=cache)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["python stage gen on amd64: tinygen 1.0 → 1.1",
                                          "python stage gen on arm64: tinygen 1.0 → 1.1"]
    assert (path.parent / "xarch.lock").read_bytes() == before  # --check writes nothing

    text = path.read_text().replace("- tinygen", "- tinygen==1.0")
    path.write_text(text)
    result = run("build", "-f", str(path), "--locked", "-o", f"oci:{tmp_path / 'out'}", cache=cache)
    assert result.returncode == 2
    assert error_lines(result) == ["xarch: error: --locked: xarch.lock does not match the recipe: "
                                   "stage gen: python requirements changed"]
    assert not (tmp_path / "out").exists()
    result = run("lock", "--check", "-f", str(path), cache=cache)
    assert result.returncode == 1
    assert "python: stage gen: python requirements changed" in result.stdout.splitlines()


def test_a_dependency_without_a_wheel_for_a_platform_names_stage_package_and_platform(
        index: PackageIndex, tmp_path: Path) -> None:
    path = light_recipe(tmp_path / "app", index, requirements=["onlyamd"])
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert line.startswith("xarch: error: stages.gen.python: onlyamd has no wheel for arm64 (CPython 3.11, "
                           "glibc 2.36: aarch64-manylinux_2_36)"), line
    assert not (path.parent / "xarch.lock").exists() or "python_stages" not in (
        path.parent / "xarch.lock").read_text()


def test_a_stage_without_its_interpreter_is_one_line(index: PackageIndex, tmp_path: Path) -> None:
    path = light_recipe(tmp_path / "app", index, interpreter="/opt/py/bin/python3.11")
    result = run("build", "-f", str(path), "--platform", "amd64", "-o", f"oci:{tmp_path / 'out'}",
                 cache=tmp_path / "cache")
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert line.startswith(f"xarch: error: {path}:")
    assert (": stages.gen.python.interpreter: /opt/py/bin/python3.11 is not in stage gen's root for amd64"
            in line)
    assert not (tmp_path / "out").exists()


def test_strategy_cross_for_a_stage_with_python_is_one_line_before_any_download(index: PackageIndex,
                                                                                tmp_path: Path) -> None:
    if platforms.host().name != "amd64":
        not_applicable("--strategy cross here means arm64 on an amd64 host")
    path = light_recipe(tmp_path / "app", index)
    data = yaml.safe_load(path.read_text())
    data["stages"]["gen"]["steps"] = [{"run": "true"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("build", "-f", str(path), "--platform", "arm64", "--strategy", "cross",
                 "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    assert result.returncode == 2
    assert error_lines(result) == ["xarch: error: stage 'gen' (arm64): its python: wheels are locked for the "
                                   "target and a cross stage runs the build machine's python; use --strategy "
                                   "native or emulate"]
    assert not (path.parent / "xarch.lock").exists()  # refused before the lock and any download


@pytest.mark.parametrize(("section", "message"), [
    ("python_stages:\n  gen: 3\n", "python_stages.gen: not a mapping"),
    ("python_stages: [gen]\n", "python_stages: not a mapping"),
    ('python_stages:\n  "gen\\nxarch: error: fake": {}\n',
     "python_stages: 'gen\\nxarch: error: fake' is not a stage name"),
])
def test_a_malformed_python_stages_section_of_the_lock_is_one_line(index: PackageIndex,
                                                                   tmp_path: Path, section: str,
                                                                   message: str) -> None:
    path = light_recipe(tmp_path / "app", index)
    lock = path.parent / "xarch.lock"
    lock.write_text(section)
    result = run("build", "-f", str(path), "--locked", "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "c")
    assert result.returncode == 2
    assert error_lines(result) == [f"xarch: error: {lock}: {message}; run `xarch lock` again"]


BAD_SECTIONS = [
    ({"requirements": "tinygen"}, "stages.gen.python.requirements", "list"),
    ({"requirements": ["tiny gen ==="]}, "stages.gen.python.requirements", "is not a requirement (PEP 508)"),
    ({"requirements": ["x @ file:///etc/passwd"]}, "stages.gen.python.requirements", "direct reference"),
    ({"version": "4.0"}, "stages.gen.python.version", "is not a Python 3 version"),
    ({"target": "opt/venv"}, "stages.gen.python.target", "absolute image path"),
    ({"index_url": "ftp://x/simple"}, "stages.gen.python.index_url", "http(s) URL"),
    ({"requirements_file": "../req.txt"}, "stages.gen.python.requirements_file", "beside the recipe"),
    ({"pip": True}, "stages.gen.python.pip", "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_SECTIONS)
def test_a_bad_stage_python_section_is_one_line_naming_the_field(tmp_path: Path, change: dict[str, Any],
                                                                 field: str, message: str) -> None:
    section: dict[str, Any] = {"requirements": ["tinygen"], "version": "3.11", "glibc": "2.36", **change}
    if "requirements_file" in change:
        del section["requirements"]
    path = write_recipe(tmp_path / "app", {"name": "x", "platforms": ["amd64"], "stages": {
        "gen": {"python": section, "steps": [{"run": "true"}]}}})
    for command in (["lock"], ["build", "-o", f"oci:{tmp_path / 'out'}"]):
        result = run(*command, "-f", str(path), cache=tmp_path / "cache")
        assert result.returncode == 2, result.stderr
        (line,) = error_lines(result)
        assert line.startswith(f"xarch: error: {path}:"), line
        assert f": {field}: " in line and message in line, line
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "app" / "xarch.lock").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("stage", "field", "message"), [
    ({"dockerfile": "Dockerfile"}, "stages.gen", "a stage with a dockerfile takes no"),
    ({"cross": True, "packages": ["dash"], "steps": [{"run": "true"}]}, "stages.gen.python",
     "a cross stage runs the build machine's python"),
    ({"strategy": "cross", "packages": ["dash"], "steps": [{"run": "true"}]}, "stages.gen.python",
     "use strategy native or emulate"),
])
def test_python_in_a_dockerfile_or_cross_stage_is_one_line(tmp_path: Path, stage: dict[str, Any], field: str,
                                                            message: str) -> None:
    path = write_recipe(tmp_path / "app", {
        "name": "x", "platforms": ["amd64"], "sources": {"debian": {"suites": ["bookworm"]}},
        "stages": {"gen": {**stage, "python": {"requirements": ["tinygen"]}}}})
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert line.startswith(f"xarch: error: {path}:") and f": {field}: " in line and message in line, line


def test_a_stage_whose_python_version_cannot_be_told_names_the_field(index: PackageIndex,
                                                                     tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "app", {"name": "x", "platforms": ["amd64"], "stages": {
        "gen": {"python": {"requirements": ["tinygen"], "index_url": index.url}}}})
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert ": stages.gen.python.interpreter: cannot tell /usr/bin/python3's Python version on amd64" in line
    assert "give stages.gen.python.version" in line


# --- end to end: Debian's python3 in the stage, a step imports the wheels -----------------------

# The root has dash and python3 only (no coreutils): the step's shell reads the random line itself.
STEP = ("python3 -c 'import os, tinygen; os.mkdir(\"/out\"); tinygen.write(\"/out/gen.txt\")' && "
        "read line < /proc/sys/kernel/random/uuid && echo \"$line\" >> /out/gen.txt")


def debian_recipe(folder: Path, index: PackageIndex, platforms_: list[str]) -> Path:
    """A stage of Debian's python3-minimal and dash whose step imports tinygen (no network) and
    writes /out/gen.txt (with a random line: a step that ran again says so); the image takes it."""
    (folder / "notes").mkdir(parents=True, exist_ok=True)
    (folder / "notes" / "a.txt").write_text("a\n")
    (folder / "gen.cfg").write_text("the stage's only input\n")
    return write_recipe(folder, {
        "name": "stagepy", "platforms": platforms_, "epoch": EPOCH,
        "sources": {"debian": {"suites": ["bookworm"]}},
        "stages": {"gen": {"packages": ["python3-minimal", "dash"], "inputs": ["gen.cfg"],
                           "python": {"requirements": ["tinygen"], "index_url": index.url},
                           "steps": [{"run": STEP}]}},
        "files": [{"src": "notes", "dst": "/notes"}],
        "copy": [{"from": "gen:/out/gen.txt", "dst": "/gen.txt"}],
    })


@pytest.fixture(scope="module")
def debian_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")  # the Debian downloads are shared by the module's builds


def gen_lines(layout: Path, platform: str) -> list[str]:
    return image_files(layout, platform)["gen.txt"].data.decode().splitlines()


@pytest.mark.slow
def test_a_stage_step_imports_the_locked_package_natively_and_a_pin_change_reruns_it(
        index: PackageIndex, tmp_path: Path, debian_cache: Path) -> None:
    need_tool("bwrap")
    host = platforms.host().name
    if host not in MACHINE_OF:
        not_applicable(f"the test's wheels are for amd64 and arm64 hosts, not {host}")
    path = debian_recipe(tmp_path / "app", index, [host])
    ok("lock", "-f", str(path), cache=debian_cache, timeout=1800)
    data = yaml.safe_load((path.parent / "xarch.lock").read_text())
    assert "gen" in data["packages"] and data["python_stages"]["gen"]["platforms"][host]["target"] == {
        "python": "3.11", "glibc": "2.36", "uv_platform": f"{MACHINE_OF[host]}-manylinux_2_36"}

    first = tmp_path / "first"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{first}", cache=debian_cache, timeout=1800)
    lines = gen_lines(first, host)
    assert lines[0] == f"tinygen 1.0 with _native.cpython-311-{MACHINE_OF[host]}-linux-gnu.so"
    files = image_files(first, host)
    assert not [name for name in files if "tinygen" in name or "python" in name]  # the stage never ships

    # An edit the stage does not read (an image file) rebuilds the image, not the stage.
    (path.parent / "notes" / "a.txt").write_text("b\n")
    second = tmp_path / "second"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{second}", cache=debian_cache)
    assert image_files(second, host)["notes/a.txt"].data == b"b\n"
    assert gen_lines(second, host) == lines  # the same random line: the step did not run again

    # The index publishes tinygen 1.1 and `xarch lock` moves the pin: the recipe is unchanged,
    # the stage root is not, so the step runs again and imports the new version.
    add_tinygen(Path(index.folder), "1.1")
    ok("lock", "-f", str(path), cache=debian_cache)
    third = tmp_path / "third"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{third}", cache=debian_cache)
    moved = gen_lines(third, host)
    assert moved[0] == f"tinygen 1.1 with _native.cpython-311-{MACHINE_OF[host]}-linux-gnu.so"
    assert moved[1] != lines[1]


@pytest.mark.slow
@pytest.mark.qemu
def test_an_arm64_stage_step_imports_the_aarch64_wheels_under_qemu(index: PackageIndex, tmp_path: Path,
                                                                   debian_cache: Path) -> None:
    need_tool("bwrap")
    if platforms.host().name == "arm64":
        not_applicable("this test emulates arm64 on another host")  # the native test covers an arm64 host
    need_tool("qemu-aarch64-static")
    need_binfmt("aarch64")
    path = debian_recipe(tmp_path / "app", index, ["arm64"])
    ok("lock", "-f", str(path), cache=debian_cache, timeout=1800)
    out = tmp_path / "out"
    result = ok("build", "-f", str(path), "--locked", "-o", f"oci:{out}", cache=debian_cache, timeout=1800)
    assert "stage gen: emulate" in result.stderr
    assert gen_lines(out, "arm64")[0] == "tinygen 1.0 with _native.cpython-311-aarch64-linux-gnu.so"


def test_a_stage_takes_a_requirements_file_and_a_venv_target(index: PackageIndex, tmp_path: Path) -> None:
    path = light_recipe(tmp_path / "app", index, requirements_file="requirements.txt", target="/opt/venv")
    data = yaml.safe_load(path.read_text())
    del data["stages"]["gen"]["python"]["requirements"]
    data["copy"] = [{"from": "gen:/opt/venv", "dst": "/opt/venv"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (path.parent / "requirements.txt").write_text("# the generator\ntinygen\n")
    out = tmp_path / "out"
    ok("build", "-f", str(path), "--platform", "arm64", "-o", f"oci:{out}", cache=tmp_path / "cache")
    files = image_files(out, "arm64")
    assert files["opt/venv/bin/python"].linkname == "/usr/bin/python3.11"
    assert b"home = /usr/bin\n" in files["opt/venv/pyvenv.cfg"].data
    assert "opt/venv/lib/python3.11/site-packages/tinybin/_native.cpython-311-aarch64-linux-gnu.so" in files

    (path.parent / "requirements.txt").write_text("--index-url http://evil/simple\ntinygen\n")
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    assert error_lines(result) == [
        f"xarch: error: {path}: stages.gen.python.requirements_file: requirements.txt:1: only requirements "
        "such as 'flask==3.1.*' are read, not pip options or continued lines ('--index-url http://evil/simple')"]


def test_the_debian_part_and_the_stages_section_keep_each_other(tmp_path: Path) -> None:
    from xarch.sources.debian.lock import Lock, LockedPackage
    from xarch.sources.python.lock import PythonLock, dump_stage_sections, load_stage_sections
    from xarch.sources.python.resolve import LockedWheel, Target

    path = tmp_path / "xarch.lock"
    wheel = LockedWheel("tinygen", "1.0", "tinygen-1.0-py3-none-any.whl", "http://127.0.0.1:9/files/x.whl",
                        "a" * 64, 10)
    stages = {name: PythonLock("http://127.0.0.1:9/simple", "sha256:" + "b" * 64, "uv 0.13.9",
                               {"amd64": Target("amd64", "x86_64", "3.11", "2.36")}, {"amd64": [wheel]})
              for name in ("zz", "gen")}
    dump_stage_sections(path, stages)
    debian = Lock({"source": "sha256:1"}, {"bookworm": {"date": "x"}},
                  {"gen": {"amd64": [LockedPackage("libc6", "2.36-9", "amd64", "pool/l.deb", 1, "c" * 64,
                                                   "bookworm")]}})
    debian.dump(path)  # the Debian part rewrites the file: the stages' section stays
    assert load_stage_sections(path) == stages
    before = path.read_bytes()
    dump_stage_sections(path, stages)
    assert path.read_bytes() == before
    assert before.index(b"\npython_stages:\n  gen:") < before.index(b"\n  zz:") < before.index(b"\nreleases:")
    assert Lock.load(path).packages == debian.packages
    dump_stage_sections(path, {})  # no stage has python: any more: the section goes
    assert b"python_stages" not in path.read_bytes() and Lock.load(path).packages == debian.packages
