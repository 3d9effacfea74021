"""Debian copyright files (DEP-5) to SPDX license expressions, purls, and the in-toto statements."""

from __future__ import annotations

import pytest

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


def test_provenance_records_strategies_and_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from xarch.oci.digest import canonical_json
    from xarch.sbom.provenance import BuildFacts, Dependency, provenance_statement, reproduction_statement

    config = canonical_json({"history": [
        {"created": "2023-11-14T22:13:20Z", "created_by": "xarch stage build: cross on amd64",
         "empty_layer": True},
        {"created": "2023-11-14T22:13:20Z", "created_by": "xarch layer app"}]})
    monkeypatch.setenv("XARCH_BUILDER_ID", "https://ci.example/runs/7")
    facts = BuildFacts("xarch.yaml", "a" * 64, "b" * 64, "app", "1.0", ("amd64", "arm64"), 1700000000)
    deps = [Dependency("pkg:deb/debian/zlib1g@1?arch=arm64&distro=debian-12", "c" * 64, "pool/z.deb",
                       ("image",)),
            Dependency("pkg:deb/debian/gcc-12@1?arch=amd64&distro=debian-12", "d" * 64, "pool/g.deb",
                       ("build (amd64->arm64)",))]
    first = provenance_statement(facts, "arm64", "sha256:" + "e" * 64, config, deps)
    assert first == provenance_statement(facts, "arm64", "sha256:" + "e" * 64, config, list(reversed(deps)))
    statement = json.loads(first)
    definition = statement["predicate"]["buildDefinition"]
    assert definition["internalParameters"]["strategies"] == {"build": "cross on amd64"}
    assert [d["uri"] for d in definition["resolvedDependencies"]] == [
        "xarch.lock", "pkg:deb/debian/gcc-12@1?arch=amd64&distro=debian-12",
        "pkg:deb/debian/zlib1g@1?arch=arm64&distro=debian-12"]
    assert statement["predicate"]["runDetails"]["builder"]["id"] == "https://ci.example/runs/7"
    assert set(statement["predicate"]["runDetails"]["metadata"]) == {"invocationId"}
    reproduced = json.loads(reproduction_statement("r.example/app:1.0", "sha256:" + "f" * 64, facts,
                                                   {"index": "sha256:" + "f" * 64}))
    assert reproduced["subject"] == [{"name": "r.example/app:1.0", "digest": {"sha256": "f" * 64}}]
    assert reproduced["predicate"]["lock"]["digest"]["sha256"] == "b" * 64
