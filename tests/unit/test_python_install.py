"""Installing locked wheels into an image tree (xarch/sources/python/install.py) with PyPA's
installer: the install scheme of each interpreter and target, entry-point scripts, a venv's own
files, and a wheel whose RECORD does not match refused in one line."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from tests.support.pyindex import make_wheel
from tests.support.trees import entry_at
from xarch.oci.store import Store
from xarch.oci.tree import Tree
from xarch.sources.python.config import PythonSpec
from xarch.sources.python.install import WheelInstallError, install_wheels, layout, wheels_digest
from xarch.sources.python.resolve import LockedWheel


def stored(store: Store, wheel: Path) -> LockedWheel:
    data = wheel.read_bytes()
    sha256 = store.put_bytes(data).removeprefix("sha256:")
    name = wheel.name.split("-")[0]
    return LockedWheel(name, wheel.name.split("-")[1], wheel.name, f"https://index.invalid/{wheel.name}",
                       sha256, len(data))


def spec(**fields: str) -> PythonSpec:
    return PythonSpec(requirements=["hello"], **fields)


def test_the_scheme_of_each_interpreter_and_target() -> None:
    debian = layout(spec(), "3.11")
    assert (debian.site, debian.scripts, debian.shebang) == (
        "/usr/local/lib/python3.11/dist-packages", "/usr/local/bin", "/usr/bin/python3")
    own = layout(spec(interpreter="/opt/py/bin/python3"), "3.12")
    assert (own.site, own.scripts, own.include) == (
        "/opt/py/lib/python3.12/site-packages", "/opt/py/bin", "/opt/py/include/python3.12")
    venv = layout(spec(target="/opt/venv/"), "3.11")
    assert (venv.site, venv.scripts, venv.shebang, venv.venv) == (
        "/opt/venv/lib/python3.11/site-packages", "/opt/venv/bin", "/opt/venv/bin/python", "/opt/venv")


def test_a_wheel_is_installed_with_its_entry_point_script(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    wheel = make_wheel(tmp_path, "hello", "1.0", "py3-none-any", {"hello/__init__.py": b"def main(): pass\n"},
                       console_scripts={"hello": "hello:main"})
    tree = Tree()
    written = install_wheels(tree, [stored(store, wheel)], spec(), "3.11", store)
    assert written >= 3
    assert entry_at(tree, "usr/local/lib/python3.11/dist-packages/hello/__init__.py").read() == (
        b"def main(): pass\n")
    script = entry_at(tree, "usr/local/bin/hello")
    assert script.read().startswith(b"#!/usr/bin/python3\n") and script.mode & 0o111
    assert entry_at(tree, "usr/local/lib/python3.11/dist-packages/hello-1.0.dist-info/INSTALLER").read() == (
        b"xarch\n")


def test_a_venv_target_gets_pyvenv_cfg_and_interpreter_links(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    wheel = make_wheel(tmp_path, "hello", "1.0", "py3-none-any", {"hello/__init__.py": b""})
    tree = Tree()
    install_wheels(tree, [stored(store, wheel)], spec(target="/opt/venv"), "3.11", store, "3.11.2")
    assert entry_at(tree, "opt/venv/pyvenv.cfg").read() == (
        b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n")
    assert entry_at(tree, "opt/venv/bin/python").linkname == "/usr/bin/python3"
    assert entry_at(tree, "opt/venv/bin/python3").linkname == "python"
    assert entry_at(tree, "opt/venv/lib64").linkname == "lib"


def test_a_wheel_whose_record_does_not_match_is_one_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    wheel = make_wheel(tmp_path, "bad", "1.0", "py3-none-any", {"bad/__init__.py": b"x = 1\n"})
    with zipfile.ZipFile(wheel) as archive:  # the same wheel, one file changed after RECORD was written
        members = {name: archive.read(name) for name in archive.namelist()}
    members["bad/__init__.py"] = b"x = 2\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(WheelInstallError) as caught:
        install_wheels(Tree(), [stored(store, wheel)], spec(), "3.11", store)
    assert str(caught.value).startswith("python: bad-1.0-py3-none-any.whl: not an installable wheel: ")
    assert "\n" not in str(caught.value)


def test_a_wheel_missing_from_the_store_says_build_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    missing = LockedWheel("gone", "1.0", "gone-1.0-py3-none-any.whl", "https://x.invalid/g", "0" * 64, 1)
    with pytest.raises(WheelInstallError, match="is not in the store"):
        install_wheels(Tree(), [missing], spec(), "3.11", store)


def test_the_wheels_digest_ignores_their_order() -> None:
    a = LockedWheel("a", "1", "a-1-py3-none-any.whl", "u", "1" * 64, 1)
    b = LockedWheel("b", "1", "b-1-py3-none-any.whl", "u", "2" * 64, 1)
    assert wheels_digest([a, b]) == wheels_digest([b, a]) != wheels_digest([a])
    assert wheels_digest([]) == hashlib.sha256(b"").hexdigest()
