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

from tests.support.needs import need_tool
from xarch import platforms

ROOT = Path(__file__).resolve().parents[2]
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


def test_arm64_from_another_host_gets_qemu_and_no_host_cross_compiler() -> None:
    """The instance that made a fresh machine red was g++ for the arm64 cross strategy; cross now
    takes its toolchain from locked archive packages in the stage's root, so the host needs none."""
    if platforms.host().name == "arm64":
        return  # arm64 is native here: nothing to install for it
    printed = _print_packages().stdout.split()
    assert {"qemu-user-static", "binfmt-support"} <= set(printed)
    assert not [p for p in printed if p.endswith("-aarch64-linux-gnu")], printed


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


def tools_the_tests_need() -> set[str]:
    """Every literal NAME in need_tool("NAME") under tests/."""
    names = set()
    for test_file in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(test_file.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", None))
            first = node.args[0]
            if called == "need_tool" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    return names


def package_of(tool: str) -> str:
    """The Debian package that ships TOOL on this host: the first on PATH that dpkg knows
    (a hand-installed /usr/local/bin copy is passed over), under /usr or, merged, /."""
    need_tool(tool)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(folder, tool)
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        path = path.resolve()
        candidates = [path] + ([Path("/") / path.relative_to("/usr")] if path.is_relative_to("/usr") else [])
        for candidate in candidates:
            result = subprocess.run(["dpkg-query", "-S", str(candidate)], capture_output=True, text=True,
                                    check=False)
            if result.returncode == 0:
                return result.stdout.split(":")[0].split(",")[0].strip()
    raise AssertionError(f"no Debian package ships {tool} on this host's PATH: a fresh machine will lack it")


def test_every_tool_a_test_needs_comes_from_a_package_setup_host_installs() -> None:
    """A fresh Debian 12 has its required packages, python3, and what setup-host and install add.

    A tool found on this host only because someone installed it by hand (file, git, ps were)
    would fail on a fresh machine under XARCH_REQUIRE_TOOLS=1: name its package here first.
    """
    need_tool("dpkg-query")
    need_tool("apt-cache")
    installed = _print_packages().stdout.split() + ["python3", "python3-venv"]  # scripts/install: venv
    closure = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *installed],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split("\n")
    have = {line.strip() for line in closure if line and not line.startswith(" ")}
    required = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential} ${Priority}\n"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    for line in required:
        package, essential, priority = (line.split() + ["", ""])[:3]
        if essential == "yes" or priority == "required":
            have.add(package)
    missing = {tool: package_of(tool) for tool in sorted(tools_the_tests_need() - trixie_tools())}
    missing = {tool: package for tool, package in missing.items() if package not in have}
    assert not missing, f"tools the tests need whose packages setup-host does not install: {missing}"


def trixie_tools() -> set[str]:
    """The tools setup-host takes out of Debian trixie's packages into /usr/local/bin (bookworm has none)."""
    result = subprocess.run(["bash", str(SETUP_HOST), "--print-trixie-tools"], capture_output=True, text=True,
                            timeout=60, check=True)
    return set(result.stdout.split())


def test_the_tools_taken_from_trixie_are_setup_hosts_and_run_here() -> None:
    """cosign and oras (tests/integration/test_sign.py's oracles) come from trixie as buildx does: the
    binary only, with the Debian version it came from beside it; each runs on this bookworm libc."""
    tools = trixie_tools()
    assert {"cosign", "oras"} <= tools <= tools_the_tests_need()
    for tool in sorted(tools):
        path = Path(need_tool(tool))
        marker = path.parent / f".{tool}.deb-version"
        assert marker.is_file() and marker.read_text().strip(), f"{path} was not put there by setup-host"
        ran = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=60, check=False)
        assert ran.returncode == 0, ran.stderr
