"""Resolve requirements for one platform with uv, to exactly one wheel per dependency.

Why uv (`uv pip compile --python-platform aarch64-manylinux_2_36 --python-version 3.11
--only-binary :all: --format pylock.toml`): it resolves for a target that is not the host,
environment markers included (`platform_machine`, `python_version`, `sys_platform` are the
target's), and writes PEP 751's pylock.toml with each chosen wheel's URL, size and sha256.
pip's `--platform/--python-version` only filter wheel tags: pip evaluates markers against the
interpreter running it, so a lock would depend on the host's Python and CPU. uv is a
maintained PyPA-compatible resolver shipped as a wheel (`uv` on PyPI), pinned in pyproject.toml.

uv runs with `--no-config` and without the caller's UV_* settings, so the recipe alone (its
requirements and `index_url`) decides what is resolved, not a uv.toml or a shell variable.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from xarch.errors import HostError, InputError, NetworkError
from xarch.platforms import Platform

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Debian architecture → the machine in wheel platform tags (PEP 600) and in uv's target names.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
# The glibc levels uv's --python-platform names for these machines (uv 0.13: 2_17, 2_28, 2_31..2_40).
UV_LEVELS = (17, 28, *range(31, 41))
# PEP 600's aliases of the older manylinux tags, which many wheels still carry alone.
LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class WheelResolveError(InputError):
    """A requirement cannot be satisfied with wheels for a platform (exit 2)."""


class NoResolver(InputError):
    """A platform xarch cannot resolve wheels for (exit 2)."""


@dataclass(frozen=True)
class LockedWheel:
    """One wheel pinned for one platform: what `xarch build` fetches and installs."""

    name: str  # canonical (PEP 503) project name
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None  # None when the index did not say (a PEP 503 HTML page)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.filename})"


@dataclass(frozen=True)
class Target:
    """The interpreter and C library wheels must fit, on one platform."""

    platform: str  # xarch platform name
    machine: str  # x86_64, aarch64
    python: str  # "3.11"
    glibc: str  # "2.36"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def uv_platform(self) -> str:
        minor = int(self.glibc.split(".")[1])
        level = max(level for level in UV_LEVELS if level <= minor)
        return f"{self.machine}-manylinux_2_{level}"

    def platform_tags(self) -> list[str]:
        """manylinux_2_N_MACHINE for N from the image's glibc down, with PEP 600's legacy aliases."""
        minor = int(self.glibc.split(".")[1])
        lowest = 5 if self.machine in ("x86_64", "i686") else 17
        tags: list[str] = []
        for level in range(minor, lowest - 1, -1):
            tags.append(f"manylinux_2_{level}_{self.machine}")
            if level in LEGACY:
                tags.append(f"{LEGACY[level]}_{self.machine}")
        return tags

    def supported(self) -> list[Tag]:
        """Every tag a wheel may carry to run here, best first (packaging.tags' order)."""
        version = tuple(int(part) for part in self.python.split("."))
        platforms = self.platform_tags()
        return [*cpython_tags(version, [self.abi], platforms), *compatible_tags(version, self.abi, platforms)]

    def describe(self) -> str:
        """`arm64 (CPython 3.11, glibc 2.36: aarch64-manylinux_2_36)`: the target as messages name it."""
        return f"{self.platform} (CPython {self.python}, glibc {self.glibc}: {self.uv_platform})"


def target_for(platform: Platform, python: str, glibc: str) -> Target:
    """The wheel target of PLATFORM for CPython PYTHON ("3.11") on glibc GLIBC ("2.36"). NoResolver
    (exit 2) for an architecture uv has no manylinux tags for, or a glibc below 2.17 (PEP 600).
    """
    machine = MACHINES.get(platform.debian_arch)
    if machine is None:
        raise NoResolver(
            f"python: no wheel resolver for {platform.name}: uv resolves manylinux wheels for "
            f"{', '.join(MACHINES)} only; build the dependencies in a stage (docs/python.md)"
        )
    if int(glibc.split(".")[1]) < 17:
        raise NoResolver(f"python: glibc {glibc} is older than manylinux's oldest level for {machine} (2.17)")
    return Target(platform.name, machine, python, glibc)


def uv_binary() -> str:
    """Path of the uv executable the `uv` Python package ships; HostError (exit 3) when missing."""
    try:
        from uv import find_uv_bin
    except ImportError:
        raise HostError("python: uv is not installed (pip install 'uv', a dependency of xarch)") from None
    try:
        return str(find_uv_bin())
    except FileNotFoundError as error:
        raise HostError(f"python: the uv binary is missing: {error}") from None


def uv_version() -> str:
    """`uv X.Y.Z` as `uv --version` prints it (the lock's resolver field); a placeholder when it prints
    nothing.
    """
    result = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "uv (unknown version)"


def _environment() -> dict[str, str]:
    # The caller's UV_* settings (an index, find-links, offline mode) would change what the lock
    # says; the cache directory only changes how fast.
    return {
        key: value for key, value in os.environ.items() if not key.startswith("UV_") or key == "UV_CACHE_DIR"
    }


def resolve(requirements: list[str], target: Target, index_url: str) -> list[LockedWheel]:
    """One wheel per dependency of REQUIREMENTS for TARGET, sorted by name.

    Raises WheelResolveError (exit 2, one line naming the dependency and the platform) when no
    wheel fits, NetworkError (exit 4) when the index cannot be reached, HostError (exit 3)
    without uv."""
    with tempfile.TemporaryDirectory(prefix="xarch-python-") as tmp:
        requirements_in = Path(tmp) / "requirements.in"
        requirements_in.write_text("".join(f"{line}\n" for line in requirements), encoding="utf-8")
        output = Path(tmp) / "pylock.toml"
        command = [
            uv_binary(),
            "pip",
            "compile",
            "--no-config",
            "--quiet",
            "--no-header",
            "--python-platform",
            target.uv_platform,
            "--python-version",
            target.python,
            "--only-binary",
            ":all:",
            "--index-url",
            index_url,
            "--format",
            "pylock.toml",
            "-o",
            str(output),
            str(requirements_in),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, env=_environment(), cwd=tmp
        )
        if result.returncode != 0:
            raise _failure(result.stderr, target, index_url)
        try:
            data = tomllib.loads(output.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise WheelResolveError(
                f"python: uv wrote no readable pylock.toml for {target.platform}: {error}"
            ) from None
    return wheels_of(data, target, index_url)


def _failure(stderr: str, target: Target, index_url: str) -> Exception:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    cause = next((line.removeprefix("cause:").strip() for line in lines if line.startswith("cause:")), None)
    text = cause or next((line for line in lines if line.startswith("error:")), "") or " / ".join(lines[-3:])
    text = text.removeprefix("error:").strip()
    missing = re.search(r"Because (\S+?)(?:[=<>!~;\[]\S*)? has no (?:usable )?wheels", text)
    if missing:
        return WheelResolveError(
            f"python: {missing.group(1)} has no wheel for {target.describe()}; pin a version "
            f"that has one, or build it in a stage and copy it in (docs/python.md) [uv: {text}]"
        )
    if re.search(
        r"Failed to fetch|error sending request|dns error|Connection refused|timed out|status code 5", stderr
    ):
        return NetworkError(f"python: cannot reach the index {index_url} for {target.platform}: {text}")
    return WheelResolveError(f"python: cannot resolve for {target.describe()}: {text}")


def wheels_of(data: dict[str, Any], target: Target, index_url: str) -> list[LockedWheel]:
    """The best wheel of each package of a pylock.toml (PEP 751) for TARGET; the document is
    checked as hostile input (types, URL scheme, sha256 form, file name).

    WheelResolveError (exit 2) for a malformed document or a package without a fitting wheel.
    """
    supported = {tag: rank for rank, tag in enumerate(reversed(target.supported()))}
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise WheelResolveError("python: uv's pylock.toml has no [[packages]] list")
    result: list[LockedWheel] = []
    for package in packages:
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise WheelResolveError("python: uv's pylock.toml has a package without a name")
        name = canonicalize_name(package["name"])
        best: tuple[int, LockedWheel] | None = None
        for wheel in package.get("wheels") or []:
            locked = _wheel(wheel, name, str(package.get("version", "")))
            try:
                _, _, _, tags = parse_wheel_filename(locked.filename)
            except InvalidWheelFilename as error:
                raise WheelResolveError(f"python: {name}: {error}") from None
            rank = max((supported.get(tag, -1) for tag in tags), default=-1)
            if rank >= 0 and (best is None or rank > best[0]):
                best = (rank, locked)
        if best is None:
            raise WheelResolveError(
                f"python: {name} has no wheel for {target.describe()}; pin a version that has "
                "one, or build it in a stage and copy it in (docs/python.md)"
            )
        result.append(best[1])
    return sorted(result, key=lambda wheel: wheel.name)


def _wheel(wheel: Any, name: str, version: str) -> LockedWheel:
    if not isinstance(wheel, dict):
        raise WheelResolveError(f"python: {name}: a wheel entry is not a table")
    url = wheel.get("url")
    hashes = wheel.get("hashes")
    sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
    size = wheel.get("size")
    if not isinstance(url, str) or not re.match(r"https?://", url):
        raise WheelResolveError(f"python: {name}: the index gave no http(s) URL for a wheel ({url!r})")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise WheelResolveError(
            f"python: {name}: the index gave no sha256 for {url} (xarch pins every wheel by it)"
        )
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise WheelResolveError(f"python: {name}: the size of {url} is not a whole number ({size!r})")
    filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return LockedWheel(name, version, filename, url, sha256, size)
