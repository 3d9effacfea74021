"""OpenSSL's subject-name hash, for the /etc/ssl/certs/HASH.N links of update-ca-certificates.

`openssl verify -CApath DIR` (and every OpenSSL client using a CA folder) finds an
issuer by the file name HASH.0, where HASH is X509_NAME_hash (OpenSSL >= 1.0): the first
four bytes, read little-endian, of the SHA-1 of the name's canonical encoding
(crypto/x509/x_name.c, x509_name_canon and asn1_string_canon):

- each attribute value of a string type (UTF8, BMP, Universal, Printable, T61, IA5,
  Visible) is converted to UTF-8, stripped of leading and trailing ASCII white space,
  each run of inner ASCII white space made one space, ASCII letters lowered, and
  re-encoded as a UTF8String; other values are kept as they are;
- the encoding is that of each RDN's SET OF (DER, so sorted), concatenated, without the
  outer SEQUENCE header.

asn1crypto (pure Python, maintained) reads and writes the DER; the canonical form is
OpenSSL's own rule, hand-written because no library exposes it (pyca/cryptography does
not). Checked against `openssl x509 -subject_hash` in tests/integration/test_debian_effects.py.
"""

from __future__ import annotations

import hashlib
import re

from asn1crypto import core, pem, x509

from xarch.oci.tree import path_bytes

_STRING_TYPES = (core.UTF8String, core.BMPString, core.UniversalString, core.PrintableString,
                 core.TeletexString, core.IA5String, core.VisibleString)
_SPACE = re.compile(rb"[ \t\n\v\f\r]+")


def _canonical(value: core.Asn1Value) -> core.Asn1Value:
    if not isinstance(value, _STRING_TYPES):
        return value
    if isinstance(value, core.TeletexString):
        text = value.contents.decode("latin-1")  # OpenSSL reads T61 as Latin-1
    else:
        text = value.native
    raw = _SPACE.sub(b" ", text.encode("utf-8").strip(b" \t\n\v\f\r"))
    lowered = bytes(b + 32 if 65 <= b <= 90 else b for b in raw)
    return core.UTF8String(lowered.decode("utf-8"))


def subject_hash(certificate: bytes) -> str:
    """The 8 hex digits `openssl x509 -subject_hash` prints for CERTIFICATE (PEM or DER).

    Raises ValueError when CERTIFICATE is not an X.509 certificate.
    """
    der = pem.unarmor(certificate)[2] if pem.detect(certificate) else certificate
    name = x509.Certificate.load(der)["tbs_certificate"]["subject"]
    encoded = b""
    for rdn in name.chosen:
        entries = []
        for attribute in rdn:
            value = attribute["value"].chosen if isinstance(attribute["value"], core.Choice) \
                else attribute["value"]
            entries.append(core.Sequence(contents=attribute["type"].dump() + _canonical(value).dump()))
        encoded += core.SetOf(contents=b"".join(sorted(e.dump() for e in entries))).dump()
    digest = hashlib.sha1(encoded).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def fingerprint(certificate: bytes) -> bytes:
    """SHA-1 (20 bytes) of CERTIFICATE's DER encoding, PEM unarmoured first: how `openssl
    rehash` tells a duplicate certificate. Raises ValueError for broken PEM armour."""
    der = pem.unarmor(certificate)[2] if pem.detect(certificate) else certificate
    return hashlib.sha1(der).digest()


def rehash_links(names_and_certs: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(link name, target name) pairs `openssl rehash` makes in a folder holding the
    certificate files NAMES_AND_CERTS: files taken in byte order of their names, each
    linked as HASH.N with the lowest N free for its hash, and a certificate identical to
    one already linked (same SHA-1 fingerprint) skipped. A file that is not a single
    certificate is skipped, as rehash does.
    """
    links: list[tuple[str, str]] = []
    seen: dict[str, list[bytes]] = {}
    for name, data in sorted(names_and_certs, key=lambda item: path_bytes(item[0])):
        try:
            digest, mark = subject_hash(data), fingerprint(data)
        except ValueError:
            continue
        taken = seen.setdefault(digest, [])
        if mark in taken:
            continue
        links.append((f"{digest}.{len(taken)}", name))
        taken.append(mark)
    return links
