"""docs/signing.md: its first shell block runs as written against a real registry, with the real cosign.

The only changes the test makes: REGISTRY and COSIGN_PASSWORD are set (the doc's reader has them),
the block runs in a folder holding a copy of examples/hello, and `cosign verify` is given the flags a
plain-HTTP registry on 127.0.0.1 needs (a real registry has TLS).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.hello import REPO, copy_hello
from tests.support.needs import need_tool
from tests.support.registry import Registry

DOC = REPO / "docs" / "signing.md"


def first_shell_block() -> str:
    match = re.search(r"^```sh\n(.*?)^```", DOC.read_text(), re.M | re.S)
    assert match, "docs/signing.md has no ```sh block"
    return match.group(1)


def shims(folder: Path) -> Path:
    folder.mkdir()
    (folder / "xarch").write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m xarch.cli "$@"\n')
    cosign = need_tool("cosign")
    (folder / "cosign").write_text(
        '#!/bin/sh\n'
        'case "$1" in verify*) set -- "$@" --allow-http-registry --allow-insecure-registry;; esac\n'
        f'exec "{cosign}" "$@"\n')
    for shim in folder.iterdir():
        shim.chmod(0o755)
    return folder


def test_the_signing_doc_runs_as_written(registry: Registry, hello_binaries: Path,
                                         tmp_path: Path) -> None:
    work = tmp_path / "work"
    copy_hello(work / "examples" / "hello")
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "COSIGN_PASSWORD")}
    env.update({"REGISTRY": registry.host, "COSIGN_PASSWORD": "doc-password",
                "XARCH_CACHE": str(tmp_path / "c"),
                "PATH": f"{shims(tmp_path / 'bin')}{os.pathsep}{env['PATH']}"})
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", first_shell_block()], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (work / "cosign.key").is_file() and (work / "cosign.pub").is_file()
    assert "The signatures were verified against the specified public key" in ran.stderr  # cosign's
    assert "the published image is what this recipe builds" in ran.stdout  # verify --against
    listed = [line for line in ran.stdout.splitlines() if "signatures:" in line]
    # inspect: index, amd64, arm64, each with exactly one signature (the second `sign` added none).
    assert [line.split()[0] for line in listed] == ["index", "linux/amd64", "linux/arm64"], ran.stdout
    assert all("signatures: 1  attestations: none" in line for line in listed), ran.stdout
    assert "doc-password" not in ran.stdout + ran.stderr
