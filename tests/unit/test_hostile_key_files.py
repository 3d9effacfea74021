"""Key and statement files that are not regular files: one line, exit 2, never a hang.

Found by trying `xarch sign/verify-signature/attest/verify --key` with a folder, /dev/zero and
a FIFO: `sign` said "no such file" for all three, `verify-signature --key FIFO` hung for
ever, and a folder gave "3: Is a directory".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.e2e import xarch
from tests.support.inprocess import xarch_in_process
from xarch.smallfile import SmallFileError, read_small

REF = "127.0.0.1:1/never:v1"


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("odd")
    fifo = folder / "fifo.key"
    os.mkfifo(fifo)
    return {"folder": (folder, "is a folder"), "fifo": (fifo, "is not a regular file"),
            "device": (Path("/dev/zero"), "is not a regular file"),
            "missing": (folder / "none", "no such file")}


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "missing"])
@pytest.mark.parametrize(("command", "what"), [
    (("sign", REF), "private key"),
    (("verify-signature", REF), "public key"),
    (("verify", "-f", "RECIPE", "--against", REF), "key"),
])
def test_an_odd_key_file_is_one_line(odd_files: dict[str, tuple[Path, str]], kind: str,
                                     command: tuple[str, ...], what: str, tmp_path: Path) -> None:
    path, reason = odd_files[kind]
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text("name: r\nplatforms: [amd64]\nfiles: []\n")
    command = tuple(str(recipe) if word == "RECIPE" else word for word in command)
    # A subprocess with a timeout: a FIFO read with open() never returns.
    result = xarch(*command, "--key", str(path), cache=tmp_path / "cache", timeout=60,
                   extra_env={"COSIGN_PASSWORD": "never-printed"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"xarch: error: {what} {path}: {reason}"
                                          + (" (a FIFO, device or socket)" if "regular" in reason else "")
                                          + "; not a key file"]


def test_an_odd_statement_file_is_one_line(odd_files: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    fifo, _ = odd_files["fifo"]
    result = xarch("attest", REF, "--key", str(tmp_path / "k"), "--statement", str(fifo),
                   cache=tmp_path / "cache", timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"xarch: error: --statement {fifo}: is not a regular file "
                                          "(a FIFO, device or socket)"]


def test_read_small_takes_a_regular_file_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert read_small(path, 5) == b"12345"
    with pytest.raises(SmallFileError, match="is 5 bytes, more than 4"):
        read_small(path, 4)
    link = tmp_path / "link"
    link.symlink_to(path)
    assert read_small(link, 5) == b"12345"


def test_a_folder_key_in_process_names_the_option(odd_files: dict[str, tuple[Path, str]]) -> None:
    folder, _ = odd_files["folder"]
    xarch_in_process("sign", REF, "--key", str(folder)).one_error_line(f"private key {folder}: is a folder")


def test_an_endless_password_on_stdin_is_one_line(tmp_path: Path) -> None:
    # readline() without a bound read `--password-stdin < /dev/zero` until memory ran out.
    import subprocess
    import sys

    from tests.support.e2e import REPO

    key = tmp_path / "cosign.key"
    pem = "ENCRYPTED SIGSTORE PRIVATE KEY"
    key.write_text(f"-----BEGIN {pem}-----\neyJ9\n-----END {pem}-----\n")
    argv = [sys.executable, "-m", "xarch.cli", "sign", REF, "--key", str(key), "--password-stdin"]
    result = subprocess.run(argv,
                            input=b"\0" * 1_000_000, capture_output=True, cwd=REPO, timeout=60, check=False,
                            env={**os.environ, "XARCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"xarch: error: private key {key}: the password on standard input is longer than 4096 bytes "
        "(is it the right input?)"]


@pytest.mark.parametrize("command", [("verify-signature", REF, "--key", "KEY"), ("push", "LAYOUT", REF)])
def test_a_ca_cert_that_is_a_fifo_or_device_is_one_line(odd_files: dict[str, tuple[Path, str]],
                                                        command: tuple[str, ...], tmp_path: Path) -> None:
    # requests/OpenSSL opened a FIFO --ca-cert and waited for ever.
    (tmp_path / "layout").mkdir()
    words = [str(tmp_path / "cosign.pub") if w == "KEY" else str(tmp_path / "layout") if w == "LAYOUT" else w
             for w in command]
    for kind in ("fifo", "device"):
        path, _ = odd_files[kind]
        result = xarch(*words, "--ca-cert", str(path), cache=tmp_path / "cache", timeout=60)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"xarch: error: --ca-cert {path}: is not a regular file "
                                              "(a FIFO, device or socket)"]
