"""scripts/setup-host installs what every platform the tests build needs (platforms/*.yaml host_packages).

A fresh machine once failed 19 cross tests because setup-host's hand-kept list missed
g++-aarch64-linux-gnu that platforms/arm64.yaml asked for. setup-host now derives the list from
the platform files; these tests read the files independently (PyYAML) and compare.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from xarch import platforms

ROOT = Path(__file__).resolve().parent.parent
SETUP_HOST = ROOT / "scripts" / "setup-host"


def _print_packages(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SETUP_HOST), "--print-packages"],
        env={**os.environ, "XARCH_SETUP_PYTHON": sys.executable, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def _platforms_in_recipe_text(text: str) -> set[str]:
    found: set[str] = set()
    for match in re.finditer(r"^\s*platforms:\s*\[([^\]]*)\]", text, re.MULTILINE):
        found.update(name.strip().strip("'\"") for name in match.group(1).split(",") if name.strip())
    return found


def platforms_the_tests_build() -> set[str]:
    """Canonical names of the platforms that the examples and the tests' recipes with stages build.

    Recipes with `stages:` are the ones whose steps need a host strategy (QEMU or a cross
    toolchain); recipes that only lay out files need nothing from the host.
    """
    names: set[str] = set()
    for recipe in ROOT.glob("examples/*/xarch.yaml"):
        names.update(str(name) for name in yaml.safe_load(recipe.read_text()).get("platforms") or [])
    for test_file in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(test_file.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "stages:" in node.value:
                names.update(_platforms_in_recipe_text(node.value))
    return {platforms.get(name).name for name in names}


def host_packages(name: str) -> set[str]:
    """Every package platforms/<name>.yaml's host_packages lists, all strategies."""
    path = platforms.data_dir() / f"{platforms.get(name).slug}.yaml"
    strategies = yaml.safe_load(path.read_text())["host_packages"]
    return {package for packages in strategies.values() for package in packages}


def test_every_platform_the_tests_build_gets_its_host_packages() -> None:
    result = _print_packages()
    assert result.returncode == 0, result.stderr
    installed = set(result.stdout.split())
    used = platforms_the_tests_build()
    assert {"amd64", "arm64"} <= used  # the scan sees the README's nginx example at least
    host = platforms.host().name
    missing = {name: sorted(host_packages(name) - installed) for name in sorted(used - {host})}
    assert not any(missing.values()), f"setup-host does not install: {missing}"


def test_arm64_cross_needs_gxx_and_setup_host_installs_it() -> None:
    """The instance that made a fresh machine red: g++ for the arm64 cross strategy."""
    if platforms.host().name == "arm64":
        return  # arm64 is native here: nothing to install for it
    assert "g++-aarch64-linux-gnu" in host_packages("arm64")
    assert "g++-aarch64-linux-gnu" in _print_packages().stdout.split()


def test_every_platform_file_says_what_a_host_needs() -> None:
    for path in sorted(platforms.data_dir().glob("*.yaml")):
        strategies = yaml.safe_load(path.read_text()).get("host_packages")
        assert isinstance(strategies, dict) and set(strategies) <= {"native", "cross", "emulate"}, path
        assert "qemu-user-static" in strategies["emulate"], path
        for packages in strategies.values():
            assert isinstance(packages, list) and all(isinstance(p, str) for p in packages), path


def test_an_unknown_platform_is_one_error_line() -> None:
    result = _print_packages(XARCH_PLATFORMS="arm64 sparc")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"setup-host: error: XARCH_PLATFORMS names 'sparc', which has no file in {ROOT}/scripts/../platforms"
    ]
