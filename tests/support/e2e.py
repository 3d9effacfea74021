"""Helpers for end-to-end tests: the real CLI with its own cache, and reading what it wrote.

Layouts are read here with tarfile/json, not with xarch's own reader, so a test does not
trust the code under test to tell it what the image holds.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EPOCH = 1_700_000_000


def xarch(*args: str, cache: Path, cwd: Path | None = None, extra_env: dict[str, str] | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m xarch.cli ARGS` with XARCH_CACHE=CACHE: tests never touch the user's cache."""
    # A SOURCE_DATE_EPOCH of the caller's shell would override the recipe's epoch.
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env["XARCH_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "xarch.cli", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def xarch_ok(*args: str, cache: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = xarch(*args, cache=cache, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, f"xarch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr from the `xarch: error:` line on (progress lines before it are dropped)."""
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("xarch: error: ")]
    assert starts, f"no error line in stderr:\n{result.stderr}"
    return lines[starts[0]:]


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _json(layout: Path, digest: str) -> dict:
    return json.loads(_blob(layout, digest))


def index_digest(layout: Path) -> str:
    top = json.loads((layout / "index.json").read_text())
    return str(top["manifests"][0]["digest"])


def manifests(layout: Path) -> dict[str, str]:
    """{architecture: manifest digest} of the layout's (nested) index."""
    nested = _json(layout, index_digest(layout))
    return {m["platform"]["architecture"]: m["digest"] for m in nested["manifests"]}


@dataclass(frozen=True)
class Member:
    type: bytes
    mode: int
    uid: int
    gid: int
    linkname: str
    data: bytes


def image_files(layout: Path, arch: str) -> dict[str, Member]:
    """Every path of ARCH's image (all layers applied in order; no whiteouts expected)."""
    manifest = _json(layout, manifests(layout)[arch])
    files: dict[str, Member] = {}
    for layer in manifest["layers"]:
        raw = _blob(layout, layer["digest"])
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                content = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
                files[info.name.removeprefix("./").rstrip("/")] = Member(
                    info.type, info.mode, info.uid, info.gid, info.linkname, content)
    return files


def layout_bytes(layout: Path) -> dict[str, bytes]:
    """Every file of a layout by relative path: two byte-identical outputs compare equal."""
    files = sorted(p for p in layout.rglob("*") if p.is_file())
    return {p.relative_to(layout).as_posix(): p.read_bytes() for p in files}


def modules_loaded(args: list[str], cache: Path, listing: Path) -> set[str]:
    """The top-level names of every module `xarch ARGS` loaded (stdout a pipe), from the process itself."""
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(listing)!r}, 'w').write(' '.join(sorted(sys.modules))))\n"
            f"sys.argv = {['xarch', *args]!r}\nfrom xarch.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "XARCH_CACHE": str(cache), "PYTHONPATH": str(REPO)},
                            check=False)
    assert result.returncode == 0, result.stderr
    return {name.split(".")[0] for name in listing.read_text().split()}
