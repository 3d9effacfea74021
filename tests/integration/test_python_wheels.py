"""Python dependencies: locked per platform from a local PEP 503 index, installed without QEMU.

The index (tests/support/pyindex.py) serves wheels built here: a pure one with an entry point
and a `.data/scripts` script, a "binary" one for x86_64 and aarch64 (its .so is an ELF header
of that machine), and one that exists for x86_64 only. uv resolves against it (xarch lock),
xarch build installs from the lock; the images are read back with tarfile (tests/support/e2e.py).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.e2e import EPOCH, REPO, error_lines, image_files, layout_bytes, xarch, xarch_ok
from tests.support.needs import need_binfmt, need_tool, opt_in
from tests.support.pyindex import PackageIndex, elf_header, make_wheel

MACHINE_OF = {"amd64": "x86_64", "arm64": "aarch64"}
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
SITE = "usr/local/lib/python3.11/dist-packages"


def write_wheels(folder: Path, version: str = "1.0", native: bytes | None = None) -> None:
    make_wheel(folder, "tinypure", version, "py3-none-any",
               {"tinypure/__init__.py": f"VERSION = {version!r}\ndef main():\n    print('tiny')\n".encode(),
                f"tinypure-{version}.data/scripts/tinytool": b"#!python\nprint('tool')\n"},
               requires=("tinybin",), console_scripts={"tinypure": "tinypure:main"},
               executable=(f"tinypure-{version}.data/scripts/tinytool",))
    if version != "1.0":
        return
    for machine in ("x86_64", "aarch64"):
        make_wheel(folder, "tinybin", "1.0", f"cp311-cp311-manylinux_2_17_{machine}.manylinux2014_{machine}",
                   {"tinybin/__init__.py": b"from tinybin import _native\n",
                    f"tinybin/_native.cpython-311-{machine}-linux-gnu.so": native or elf_header(machine)},
                   executable=(f"tinybin/_native.cpython-311-{machine}-linux-gnu.so",))
    make_wheel(folder, "onlyamd", "1.0", "cp311-cp311-manylinux_2_17_x86_64",
               {"onlyamd/__init__.py": b""})


@pytest.fixture(scope="module")
def wheel_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    write_wheels(folder)
    return folder


@pytest.fixture
def index(wheel_folder: Path, tmp_path: Path) -> Iterator[PackageIndex]:
    """A private copy of the index: tests that add or swap a wheel do it here."""
    folder = tmp_path / "index"
    shutil.copytree(wheel_folder, folder)
    served = PackageIndex(folder)
    yield served
    served.close()


def recipe(folder: Path, index: PackageIndex, requirements: list[str] | None = None,
           **python: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "python3.11").write_text("#!/bin/sh\n")  # the image's interpreter (never run here)
    section = {"requirements": ["tinypure"] if requirements is None else requirements,
               "interpreter": "/usr/bin/python3.11", "glibc": "2.36", "index_url": index.url, **python}
    if not section["requirements"]:
        del section["requirements"]
    data = {"name": "pyapp", "platforms": ["amd64", "arm64"], "epoch": EPOCH,
            "files": [{"src": "python3.11", "dst": "/usr/bin/python3.11", "mode": "0755"}],
            "python": section}
    (folder / "xarch.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "xarch.yaml"


def run(*args: str, cache: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    # uv's own cache goes beside the test's xarch cache: nothing of the user's is read or written.
    return xarch(*args, cache=cache, extra_env={"UV_CACHE_DIR": str(cache / "uv")}, **kwargs)  # type: ignore[arg-type]


def ok(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    result = run(*args, cache=cache)
    assert result.returncode == 0, f"xarch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def python_section(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["python"]


def test_lock_pins_each_platforms_wheel_and_build_installs_it_reproducibly(index: PackageIndex,
                                                                             tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index)
    ok("lock", "-f", str(path), cache=tmp_path / "cache")
    section = python_section(path.parent / "xarch.lock")
    for platform, machine in MACHINE_OF.items():
        wheels = {w["name"]: w for w in section["platforms"][platform]["wheels"]}
        assert sorted(wheels) == ["tinybin", "tinypure"]
        assert machine in wheels["tinybin"]["filename"]
        served = Path(index.folder) / wheels["tinybin"]["filename"]
        assert wheels["tinybin"]["sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
        assert wheels["tinybin"]["url"] == f"{index.root}/files/{served.name}"
        assert section["platforms"][platform]["target"] == {
            "python": "3.11", "glibc": "2.36", "uv_platform": f"{machine}-manylinux_2_36"}

    first = tmp_path / "first"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{first}", cache=tmp_path / "cache")
    for platform, machine in MACHINE_OF.items():
        files = image_files(first, platform)
        native = files[f"{SITE}/tinybin/_native.cpython-311-{machine}-linux-gnu.so"]
        assert int.from_bytes(native.data[18:20], "little") == ELF_MACHINE[machine]
        assert native.mode == 0o755 and (native.uid, native.gid) == (0, 0)
        assert files[f"{SITE}/tinypure/__init__.py"].mode == 0o644
        script = files["usr/local/bin/tinypure"]
        assert script.data.startswith(b"#!/usr/bin/python3.11\n") and script.mode == 0o755
        assert b"from tinypure import main" in script.data
        assert files["usr/local/bin/tinytool"].data == b"#!/usr/bin/python3.11\nprint('tool')\n"
        assert files[f"{SITE}/tinypure-1.0.dist-info/INSTALLER"].data == b"xarch\n"
        record = files[f"{SITE}/tinypure-1.0.dist-info/RECORD"].data.decode()
        init = files[f"{SITE}/tinypure/__init__.py"].data
        assert "tinypure/__init__.py,sha256=" in record and f",{len(init)}\n" in record
        assert "../../../bin/tinypure,sha256=" in record and "tinypure-1.0.dist-info/RECORD,,\n" in record
        assert not [name for name in files if name.endswith(".pyc") or "__pycache__" in name]
    # Another build with an empty cache (every wheel fetched again) gives the same bytes.
    second = tmp_path / "second"
    ok("build", "-f", str(path), "--locked", "-o", f"oci:{second}", cache=tmp_path / "cache2")
    assert layout_bytes(first) == layout_bytes(second)


def test_a_venv_target_gets_its_scripts_pointing_at_the_venv(index: PackageIndex, tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index, target="/opt/venv")
    out = tmp_path / "out"
    ok("build", "-f", str(path), "-o", f"oci:{out}", "--platform", "arm64", cache=tmp_path / "cache")
    files = image_files(out, "arm64")
    assert "opt/venv/lib/python3.11/site-packages/tinybin/_native.cpython-311-aarch64-linux-gnu.so" in files
    assert files["opt/venv/bin/tinypure"].data.startswith(b"#!/opt/venv/bin/python\n")
    assert files["opt/venv/bin/python"].linkname == "/usr/bin/python3.11"
    assert files["opt/venv/bin/python3.11"].linkname == "python"
    assert b"include-system-site-packages = false" in files["opt/venv/pyvenv.cfg"].data


def test_locked_and_lock_check_name_what_drifted(index: PackageIndex, tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index)
    cache = tmp_path / "cache"
    ok("lock", "-f", str(path), cache=cache)
    lock_bytes = (path.parent / "xarch.lock").read_bytes()
    result = run("lock", "--check", "-f", str(path), cache=cache)
    assert result.returncode == 0 and "every pin is what the index resolves today" in result.stdout

    write_wheels(Path(index.folder), version="2.0")  # the index moves on
    result = run("lock", "--check", "-f", str(path), cache=cache)
    assert result.returncode == 1, result.stderr
    assert "python on amd64: tinypure 1.0 → 2.0" in result.stdout
    assert "python on arm64: tinypure 1.0 → 2.0" in result.stdout
    assert (path.parent / "xarch.lock").read_bytes() == lock_bytes  # --check writes nothing

    recipe(tmp_path / "app", index, ["tinypure==1.0"])  # the recipe moves on
    result = run("build", "-f", str(path), "--locked", "-o", f"oci:{tmp_path / 'out'}", cache=cache)
    assert result.returncode == 2
    assert error_lines(result) == [
        "xarch: error: --locked: xarch.lock does not match the recipe: python requirements changed"]
    result = run("lock", "--check", "-f", str(path), cache=cache)
    assert result.returncode == 1 and "python: python requirements changed" in result.stdout


def test_a_dependency_without_a_wheel_for_a_platform_is_one_line(index: PackageIndex, tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index, ["onlyamd"])
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert "onlyamd has no wheel for arm64 (CPython 3.11, glibc 2.36" in line
    assert "build it in a stage" in line and "docs/python.md" in line
    assert not (path.parent / "xarch.lock").exists()


def test_a_wheel_that_differs_from_the_lock_is_refused_and_not_stored(index: PackageIndex,
                                                                      tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index)
    ok("lock", "-f", str(path), cache=tmp_path / "lock-cache")
    for old in Path(index.folder).glob("tinybin-*aarch64*.whl"):
        old.unlink()
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    write_wheels(swapped, native=b"\x7fELF" + bytes(60))  # same names, other bytes
    for new in swapped.glob("tinybin-*aarch64*.whl"):
        shutil.copy(new, Path(index.folder) / new.name)
    cache = tmp_path / "cache"
    result = run("build", "-f", str(path), "--locked", "-o", f"oci:{tmp_path / 'out'}", cache=cache)
    assert result.returncode == 4
    (line,) = error_lines(result)
    assert "tinybin-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl" in line
    assert "differs from xarch.lock, nothing was stored" in line
    stored = [p for p in (cache / "sha256").iterdir()]
    assert stored and all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in stored)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("python", "field", "message"), [
    ({"version": 3.1}, "python.version", "Input should be a valid string"),
    ({"version": "4.0"}, "python.version", "is not a Python 3 version"),
    ({"glibc": "2.x"}, "python.glibc", 'not a glibc version such as "2.36"'),
    ({"target": "opt/venv"}, "python.target", "absolute image path"),
    ({"interpreter": "/usr/../bin/python3"}, "python.interpreter", "without '..'"),
    ({"requirements": ["flask ==="]}, "python.requirements", "is not a requirement (PEP 508)"),
    ({"index_url": "file:///srv/simple"}, "python.index_url", "http(s) URL"),
    ({"requirements_file": "requirements.txt"}, "python", "exactly one"),
    ({"extra": 1}, "python.extra", "unknown field"),
    ({"index_url": "http://127.0.0.1/\x00"}, "python.index_url", "control character"),
    ({"requirements": [], "requirements_file": "/etc/passwd"}, "python.requirements_file",
     "beside the recipe"),
])
def test_bad_python_sections_are_one_line(tmp_path: Path, python: dict, field: str, message: str) -> None:
    from tests.support.inprocess import xarch_in_process

    class Fake:
        url = "http://127.0.0.1:9/simple"

    path = recipe(tmp_path / "app", Fake(), **python)  # type: ignore[arg-type]
    outcome = xarch_in_process("lock", "-f", str(path))
    assert outcome.code == 2
    line = outcome.one_error_line(f": {field}: ", message)
    assert line.startswith(f"xarch: error: {path}:")


def test_a_requirements_file_takes_requirements_only(index: PackageIndex, tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index, requirements=[], requirements_file="requirements.txt")
    (path.parent / "requirements.txt").write_text("# deps\ntinypure  # the app\n--index-url http://evil/\n")
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    assert error_lines(result) == [
        f"xarch: error: {path}: python.requirements_file: requirements.txt:3: only requirements such as "
        "'flask==3.1.*' are read, not pip options or continued lines ('--index-url http://evil/')"]
    (path.parent / "requirements.txt").write_text("# deps\ntinypure  # the app\n")
    ok("lock", "-f", str(path), cache=tmp_path / "cache")
    assert len(python_section(path.parent / "xarch.lock")["platforms"]["arm64"]["wheels"]) == 2


def test_a_pyproject_gives_its_project_dependencies(index: PackageIndex, tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index, requirements=[], requirements_file="pyproject.toml")
    (path.parent / "pyproject.toml").write_text('[project]\nname = "app"\ndependencies = ["tinypure", 3]\n')
    result = run("lock", "-f", str(path), cache=tmp_path / "cache")
    assert result.returncode == 2
    assert error_lines(result) == [f"xarch: error: {path}: python.requirements_file: pyproject.toml: "
                                   "project.dependencies[1]: 3 is not a requirement string"]
    (path.parent / "pyproject.toml").write_text('[project]\nname = "app"\ndependencies = ["tinybin==1.0"]\n')
    ok("lock", "-f", str(path), cache=tmp_path / "cache")
    wheels = python_section(path.parent / "xarch.lock")["platforms"]["arm64"]["wheels"]
    assert [w["name"] for w in wheels] == ["tinybin"]


def test_the_real_pypi_gives_markupsafe_for_both_machines(tmp_path: Path) -> None:
    opt_in("XARCH_PYPI", "resolves and fetches MarkupSafe from https://pypi.org")
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "python3.11").write_text("#!/bin/sh\n")
    data = {"name": "pypi", "platforms": ["amd64", "arm64"], "epoch": EPOCH,
            "files": [{"src": "python3.11", "dst": "/usr/bin/python3.11", "mode": "0755"}],
            "python": {"requirements": ["markupsafe==3.0.2"], "interpreter": "/usr/bin/python3.11",
                       "glibc": "2.36"}}
    (folder / "xarch.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    ok("build", "-f", str(folder), "-o", f"oci:{out}", cache=tmp_path / "cache")
    for platform, machine in MACHINE_OF.items():
        (so,) = [m for n, m in image_files(out, platform).items() if n.endswith(".so")]
        assert int.from_bytes(so.data[18:20], "little") == ELF_MACHINE[machine]


FLASK = REPO / "examples" / "flask"


@pytest.fixture(scope="module")
def flask_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flask") / "layout"
    cache = tmp_path_factory.mktemp("flask-cache")
    xarch_ok("build", "-f", str(FLASK), "--locked", "-o", f"oci:{out}", cache=cache, timeout=900)
    return out


@pytest.mark.slow
def test_the_flask_example_holds_each_machines_extension(flask_layout: Path) -> None:
    from elftools.elf.elffile import ELFFile  # pyelftools reads the whole ELF file, not xarch's check

    for platform, machine in (("amd64", "EM_X86_64"), ("arm64", "EM_AARCH64")):
        files = image_files(flask_layout, platform)
        (name,) = [n for n in files if n.startswith(f"{SITE}/markupsafe/_speedups") and n.endswith(".so")]
        elf = ELFFile(io.BytesIO(files[name].data))
        assert (elf.header.e_machine, elf.header.e_type) == (machine, "ET_DYN")
        assert elf.get_section_by_name(".dynsym") is not None


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.qemu
def test_the_flask_example_serves_its_page_on_both_machines(flask_layout: Path, tmp_path: Path) -> None:
    docker = need_tool("docker")
    need_binfmt("aarch64")
    for platform, machine in MACHINE_OF.items():
        tag = f"xarch-test/flask-{platform}:{time.time_ns()}"
        ok("load", str(flask_layout), "--platform", platform, "-t", tag, cache=tmp_path / "cache")
        name = f"xarch-flask-{platform}-{time.time_ns()}"
        try:
            subprocess.run([docker, "run", "-d", "--name", name, "--platform", f"linux/{platform}", tag],
                           check=True, capture_output=True)
            page = ""
            for _ in range(60):  # QEMU starts Python slowly
                probe = subprocess.run([docker, "exec", name, "/usr/bin/python3", "-c",
                                        "import urllib.request as u; "
                                        "print(u.urlopen('http://127.0.0.1:8080/').read().decode())"],
                                       capture_output=True, text=True)
                if probe.returncode == 0:
                    page = probe.stdout
                    break
                time.sleep(1)
            extension = f"_speedups.cpython-311-{machine}-linux-gnu.so"
            assert f"hello from {machine} (&lt;flask&gt;, speedups: {extension})" in page
        finally:
            subprocess.run([docker, "rm", "-f", name], capture_output=True)
            subprocess.run([docker, "rmi", "-f", tag], capture_output=True)


def test_the_debian_part_and_the_python_section_keep_each_other(tmp_path: Path) -> None:
    from xarch.sources.debian.lock import Lock, LockedPackage
    from xarch.sources.python.lock import PythonLock, dump_section, load_section
    from xarch.sources.python.resolve import LockedWheel, Target

    path = tmp_path / "xarch.lock"
    wheel = LockedWheel("tinypure", "1.0", "tinypure-1.0-py3-none-any.whl", "http://127.0.0.1:9/files/x.whl",
                        "a" * 64, None)
    python = PythonLock("http://127.0.0.1:9/simple", "sha256:" + "b" * 64, "uv 0.13.9",
                        {"amd64": Target("amd64", "x86_64", "3.11", "2.36")}, {"amd64": [wheel]})
    dump_section(path, python)  # a lock with only the python section
    debian = Lock({"source": "sha256:1"}, {"bookworm": {"date": "x"}},
                  {"image": {"amd64": [LockedPackage("libc6", "2.36-9", "amd64", "pool/l.deb", 1, "c" * 64,
                                                     "bookworm")]}})
    debian.dump(path)
    assert load_section(path) == python
    before = path.read_bytes()
    dump_section(path, python)
    assert path.read_bytes() == before  # rewriting the python section leaves the Debian part's bytes
    assert Lock.load(path).packages == debian.packages
    assert before.index(b"\npackages:") < before.index(b"\npython:") < before.index(b"\nreleases:")


@pytest.mark.slow
def test_the_flask_example_is_reproducible(tmp_path: Path) -> None:
    # The whole `xarch verify` (eleven builds) took 200 s here; these variations touch what the
    # wheels' install could pick up from the host: the build path, the umask, an empty cache.
    result = xarch("verify", "-f", str(FLASK), "--variations", "build_path,umask,cache",
                   cache=tmp_path / "cache", timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all digests identical under every variation" in result.stdout


def test_an_index_that_cannot_be_reached_is_one_line_exit_4(index: PackageIndex, tmp_path: Path) -> None:
    path = recipe(tmp_path / "app", index)
    ok("lock", "-f", str(path), cache=tmp_path / "lock-cache")
    url = python_section(path.parent / "xarch.lock")["platforms"]["amd64"]["wheels"][0]["url"]
    index.close()  # the index goes away after the lock was made
    out = tmp_path / "out"
    result = run("build", "-f", str(path), "--locked", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert result.returncode == 4
    (line,) = error_lines(result)
    assert line.startswith(f"xarch: error: cannot fetch {url}: connection failed")
    assert "gave up after 5 attempts" in line
    assert not (tmp_path / "out").exists()
    result = run("lock", "-f", str(path), cache=tmp_path / "lock-cache")
    assert result.returncode == 4
    assert error_lines(result) == [f"xarch: error: python: cannot reach the index {index.url} for amd64: "
                                   f"Failed to fetch: {index.url}/tinypure/"]


def test_an_extension_for_another_machine_meets_the_elf_check(index: PackageIndex, tmp_path: Path) -> None:
    for old in Path(index.folder).glob("tinybin-*.whl"):
        old.unlink()
    write_wheels(Path(index.folder), native=elf_header("x86_64"))  # the aarch64 wheel holds x86_64 code
    path = recipe(tmp_path / "app", index)
    result = run("build", "-f", str(path), "--platform", "arm64", "-o", f"oci:{tmp_path / 'out'}",
                 cache=tmp_path / "cache")
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert f"/{SITE}/tinybin/_native.cpython-311-aarch64-linux-gnu.so" in line
    assert "wheel tinybin-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl" in line
