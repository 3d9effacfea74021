"""cosign's key files (xarch/sign/keys.py), made by the real `cosign generate-key-pair`: the private
key opens with its password and signs what the public key verifies; a wrong password or the wrong
file is one line naming the file, never the password."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.needs import need_tool
from xarch.sign.keys import KeyFileError, load_signing_key, load_verify_key

PASSWORD = b"correct horse"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    subprocess.run([need_tool("cosign"), "generate-key-pair"], cwd=folder, check=True,
                   capture_output=True, env={**os.environ, "COSIGN_PASSWORD": PASSWORD.decode()}, timeout=120)
    return folder


def test_cosigns_key_signs_what_its_public_key_verifies(key_pair: Path) -> None:
    key = load_signing_key(key_pair / "cosign.key", PASSWORD)
    signature = key.sign(b"payload")
    public = load_verify_key(key_pair / "cosign.pub")
    assert public.verifies(signature, b"payload") and key.public().verifies(signature, b"payload")
    assert not public.verifies(signature, b"another payload")


def test_cosign_verifies_xarchs_signature(key_pair: Path, tmp_path: Path) -> None:
    """The oracle: cosign's own verify-blob accepts a signature made by xarch with cosign's key."""
    blob = tmp_path / "blob"
    blob.write_bytes(b"signed by xarch\n")
    signature = load_signing_key(key_pair / "cosign.key", PASSWORD).sign(blob.read_bytes())
    (tmp_path / "blob.sig").write_bytes(base64.b64encode(signature))
    checked = subprocess.run([need_tool("cosign"), "verify-blob", "--key", str(key_pair / "cosign.pub"),
                              "--signature", str(tmp_path / "blob.sig"), "--insecure-ignore-tlog=true",
                              str(blob)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr


def test_a_wrong_password_names_the_file_not_the_password(key_pair: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(key_pair / "cosign.key", b"guess")
    assert str(caught.value).startswith(f"private key {key_pair / 'cosign.key'}: wrong password")
    assert "guess" not in str(caught.value)


def test_the_wrong_file_is_one_line(key_pair: Path) -> None:
    with pytest.raises(KeyFileError) as wrong:
        load_verify_key(key_pair / "cosign.key")
    assert str(wrong.value).endswith("not a PEM public key (that is the private key; give the .pub file)")
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(key_pair / "cosign.pub", PASSWORD)
    assert str(caught.value).startswith(f"private key {key_pair / 'cosign.pub'}: ")
