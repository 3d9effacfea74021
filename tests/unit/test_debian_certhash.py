"""OpenSSL's subject-name hash (xarch/sources/debian/certhash.py) against the real openssl: the same
8 hex digits for subjects OpenSSL canonicalizes (case, inner and outer spaces, several RDNs), and
the HASH.N links `openssl rehash` makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.needs import need_tool
from xarch.sources.debian.certhash import rehash_links, subject_hash

SUBJECTS = ["/CN=Alpha Root", "/CN=  alpha   ROOT  ", "/C=DE/O=Example  Trust/OU=Unit/CN=Beta CA",
            "/CN=Ünïcode Root/O=Straße"]


def certificate(folder: Path, subject: str, name: str) -> bytes:
    """A self-signed certificate of SUBJECT made by openssl req (PEM)."""
    openssl = need_tool("openssl")
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", subject, "-utf8"],
                   check=True, capture_output=True)
    return cert.read_bytes()


def openssl_hash(pem: bytes) -> str:
    done = subprocess.run([need_tool("openssl"), "x509", "-noout", "-subject_hash"], input=pem,
                          check=True, capture_output=True)
    return done.stdout.decode().strip()


@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_hash_is_openssls(tmp_path: Path, subject: str) -> None:
    pem = certificate(tmp_path, subject, "c")
    assert subject_hash(pem) == openssl_hash(pem)


def test_rehash_numbers_equal_subjects_and_skips_copies_and_non_certificates(tmp_path: Path) -> None:
    first = certificate(tmp_path, "/CN=Same Name", "a")
    second = certificate(tmp_path, "/CN=same   name", "b")  # another key; equal once canonicalized
    digest = subject_hash(first)
    links = rehash_links([("b.pem", second), ("a.pem", first), ("a-copy.pem", first), ("notes.txt", b"hi")])
    assert links == [(f"{digest}.0", "a-copy.pem"), (f"{digest}.1", "b.pem")]
    with pytest.raises(ValueError):
        subject_hash(b"not a certificate")
