"""Debian copyright files (DEP-5) to SPDX license expressions, and the purl of a Debian package."""

from __future__ import annotations

from xarch.sbom.contents import PackageFact, licenses_of
from xarch.sbom.documents import distro_of, license_expression, purl


def test_machine_readable_copyright_gives_each_synopsis_once() -> None:
    text = b"""\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 1999 A
License: GPL-2+

Files: src/*
Copyright: 2000 B
License: BSD-3-clause or  GPL-2+

Files: doc/*
Copyright: 2001 C
License: GPL-2+
"""
    assert licenses_of(text) == ["BSD-3-clause or GPL-2+", "GPL-2+"]
    assert license_expression(licenses_of(text)) == "(BSD-3-Clause OR GPL-2.0-or-later) AND GPL-2.0-or-later"


def test_free_text_copyright_claims_nothing() -> None:
    assert licenses_of(b"This is Debian's prepackaged version of glibc.\n\nCopyright 1991 FSF\n") == []
    assert license_expression([]) is None


def test_names_without_an_spdx_identifier_are_license_refs() -> None:
    assert license_expression(["GPL-2 with Linux-syscall-note exception"]) \
        == "LicenseRef-debian-GPL-2-with-Linux-syscall-note-exception"
    assert license_expression(["Expat", "GPL-2.0", "public-domain"]) \
        == "GPL-2.0-only AND LicenseRef-debian-public-domain AND MIT"


def test_purl_encodes_epoch_and_plus() -> None:
    package = PackageFact("libcap2", "1:2.66-4+deb12u3+b1", "arm64", "0" * 64, "pool/x.deb",
                          "bookworm-security", "libcap2", "1:2.66-4+deb12u3")
    assert purl(package) == "pkg:deb/debian/libcap2@1%3A2.66-4%2Bdeb12u3%2Bb1?arch=arm64&distro=debian-12"
    assert distro_of("trixie") == "debian-13" and distro_of("sid") == "sid"
