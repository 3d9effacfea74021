"""SBOM documents of one platform's image: SPDX 2.3 JSON and CycloneDX 1.5 JSON.

Written as plain dicts and xarch's canonical JSON rather than through spdx-tools' or
cyclonedx-python-lib's serializers: the bytes must be a function of the image and its lock only,
and those serializers change their output (field order, indentation, the tool entries they add,
random serial numbers) between releases. Both libraries validate the output in the tests
(tests/integration/test_sbom.py: spdx-tools' validate_full_spdx_document, cyclonedx's JSON schema validator).

Reproducibility: `created`/`timestamp` is the build's epoch; packages are sorted by name and
architecture, files by path; the SPDX namespace and the CycloneDX serial number are derived from
the manifest digest, so the same image always has the same SBOM bytes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from xarch import __version__
from xarch.oci.digest import canonical_json, hex_of, platform_name
from xarch.oci.image import rfc3339
from xarch.sbom.contents import FileFact, ImageFacts, PackageFact

FORMATS = ("spdx", "cyclonedx")
# Debian's release numbers, for the purl's `distro` qualifier (purl-spec's deb type: debian-12).
DEBIAN_RELEASES = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}
# Debian copyright short names (DEP-5 §License specification) that are SPDX identifiers under
# another spelling; any other name becomes LicenseRef-debian-NAME (with its text in the document).
_SPDX_NAMES = {
    "apache-2.0": "Apache-2.0", "artistic": "Artistic-1.0", "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
    "cc0-1.0": "CC0-1.0", "expat": "MIT", "mit": "MIT", "isc": "ISC", "zlib": "Zlib",
    "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "openssl": "OpenSSL", "curl": "curl", "x11": "X11",
    "psf-2": "PSF-2.0", "python-2.0": "Python-2.0", "ftl": "FTL", "unicode-dfs-2016": "Unicode-DFS-2016",
    **{f"{family}-{v}": f"{family.upper()}-{v}.0-only"
       for family, versions in {"gpl": ["1", "2", "3"], "lgpl": ["3"], "agpl": ["3"]}.items()
       for v in versions},
    **{f"{family}-{v}+": f"{family.upper()}-{v}.0-or-later"
       for family, versions in {"gpl": ["1", "2", "3"], "lgpl": ["3"], "agpl": ["3"]}.items()
       for v in versions},
    "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later", "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later", "gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later",
    "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later",
    # Packages that already write SPDX's spelling, or drop the ".0".
    "apache-2": "Apache-2.0", "mpl-2": "MPL-2.0", "cc0": "CC0-1.0", "lgpl-2.0": "LGPL-2.0-only",
    "lgpl-2.0+": "LGPL-2.0-or-later",
    **{f"{family}-{v}.0{suffix}": f"{family.upper()}-{v}.0-{kind}"
       for family, versions in {"gpl": ["1", "2", "3"], "lgpl": ["3"], "agpl": ["3"]}.items()
       for v in versions
       for suffix, kind in (("", "only"), ("+", "or-later"), ("-only", "only"), ("-or-later", "or-later"))},
    "lgpl-2.1-only": "LGPL-2.1-only", "lgpl-2.1-or-later": "LGPL-2.1-or-later",
}


@dataclass(frozen=True)
class Subject:
    """The image an SBOM describes: the recipe's name and tag, its OCI platform, its manifest digest."""

    name: str
    tag: str
    platform: dict[str, str]
    manifest_digest: str
    epoch: int


def distro_of(suite: str) -> str:
    """`debian-12` for bookworm (and bookworm-security, -updates); the suite itself when unknown."""
    base = suite.split("-", 1)[0].split("/", 1)[0]
    return f"debian-{DEBIAN_RELEASES[base]}" if base in DEBIAN_RELEASES else suite


def purl(package: PackageFact) -> str:
    """`pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12` (purl-spec; the version's `:` and
    `+` percent-encoded)."""
    return (f"pkg:deb/debian/{quote(package.name, safe='')}@{quote(package.version, safe='')}"
            f"?arch={quote(package.architecture, safe='')}&distro={quote(distro_of(package.suite), safe='')}")


def image_purl(subject: Subject) -> str:
    """`pkg:oci/NAME@sha256:...?arch=ARCH[&variant=V]&tag=TAG` for SUBJECT (purl-spec's oci type),
    every part percent-encoded.
    """
    arch = subject.platform.get("architecture", "")
    variant = subject.platform.get("variant")
    tail = f"&variant={variant}" if variant else ""
    return (f"pkg:oci/{quote(subject.name, safe='')}@{quote(subject.manifest_digest, safe='')}"
            f"?arch={quote(arch, safe='')}{tail}&tag={quote(subject.tag, safe='')}")


def _license_token(name: str) -> str:
    known = _SPDX_NAMES.get(name.lower())
    if known:
        return known
    return "LicenseRef-debian-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "unnamed")


def license_expression(names: list[str]) -> str | None:
    """One SPDX expression for a package's Debian license synopses (`GPL-2+ or Artistic` → `(GPL-2.0-or-later
    OR Artistic-1.0)`), joined with AND; None when there are none. A synopsis with an exception
    (`with ... exception`) is one LicenseRef."""
    parts = []
    for synopsis in names:
        alternatives = [alt.strip() for alt in re.split(r"\s*,\s*|\s+or\s+", synopsis) if alt.strip()]
        # DEP-5 writes "and"/"or"; a comma binds loosest, but within one synopsis it is an "or" list.
        terms = []
        for alternative in alternatives:
            conjuncts = [_license_token(term) for term in re.split(r"\s+and\s+", alternative) if term]
            terms.append(conjuncts[0] if len(conjuncts) == 1 else "(" + " AND ".join(conjuncts) + ")")
        parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    unique = sorted(set(parts))
    return " AND ".join(unique) if unique else None


def _order(path: str) -> bytes:
    """Paths sort by their bytes, as in every layer (xarch.oci.tar)."""
    return path.encode("utf-8", "surrogateescape")


def _refs_in(expression: str) -> list[str]:
    return sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", expression)))


def _spdx_id(kind: str, key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", key)[:60].strip("-")
    return f"SPDXRef-{kind}-{readable}-{hashlib.sha256(_order(key)).hexdigest()[:12]}"


def _source_text(package: PackageFact) -> str:
    return f"built from the Debian source package {package.source} {package.source_version}"


def _verification_code(files: list[FileFact]) -> str:
    """SPDX 2.3 §7.9: the SHA1 of the files' sorted SHA1s (hex) joined."""
    return hashlib.sha1("".join(sorted(f.sha1 for f in files)).encode()).hexdigest()


def spdx_document(facts: ImageFacts, subject: Subject) -> dict[str, Any]:
    """The SPDX 2.3 document (JSON object) of one platform's image."""
    plat = platform_name(subject.platform)
    image_id = "SPDXRef-Image"
    files = sorted(facts.files.values(), key=lambda f: _order(f.path))
    file_ids = {f.path: _spdx_id("File", f.path) for f in files}
    packages: list[dict[str, Any]] = [{
        "SPDXID": image_id,
        "name": subject.name,
        "versionInfo": subject.tag,
        "downloadLocation": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        # It CONTAINS packages and files, which SPDX allows only with filesAnalyzed and the
        # verification code (SPDX 2.3 §7.8, §7.9): here over every file of the image.
        "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": _verification_code(files)},
        "licenseInfoFromFiles": ["NOASSERTION"],
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex_of(subject.manifest_digest)}],
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": image_purl(subject)}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": f"the {plat} image manifest {subject.manifest_digest}",
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]
    extracted: dict[str, str] = {}
    owned: set[str] = set()
    for package in facts.packages:
        package_id = _spdx_id("Package", f"deb:{package.name}:{package.architecture}")
        declared = license_expression(package.licenses)
        for ref in _refs_in(declared or ""):
            extracted[ref] = ref.removeprefix("LicenseRef-debian-")
        entry: dict[str, Any] = {
            "SPDXID": package_id,
            "name": package.name,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "supplier": "Organization: Debian",
            "sourceInfo": _source_text(package),
            "checksums": [{"algorithm": "SHA256", "checksumValue": package.deb_sha256}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(package)}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared or "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": f"{package.filename} ({package.suite}), architecture {package.architecture}",
        }
        mine = [facts.files[path] for path in package.files if path in facts.files]
        if mine:
            # CONTAINS needs filesAnalyzed, which needs the verification code (SPDX 2.3 §7.9).
            entry.update(filesAnalyzed=True,
                         packageVerificationCode={"packageVerificationCodeValue": _verification_code(mine)},
                         licenseInfoFromFiles=["NOASSERTION"])
        else:
            entry["filesAnalyzed"] = False
        packages.append(entry)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": package_id})
        for fact in sorted(mine, key=lambda f: _order(f.path)):
            owned.add(fact.path)
            relationships.append({"spdxElementId": package_id, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": file_ids[fact.path]})
    for fact in files:
        if fact.path not in owned:
            relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": file_ids[fact.path]})
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{subject.name}:{subject.tag} {plat}",
        "documentNamespace": f"https://spdx.org/spdxdocs/xarch-{hex_of(subject.manifest_digest)}",
        "creationInfo": {"created": rfc3339(subject.epoch), "creators": [f"Tool: xarch-{__version__}"]},
        "documentDescribes": [image_id],
        "packages": packages,
        "files": [{
            "SPDXID": file_ids[f.path],
            "fileName": "./" + f.path,
            "checksums": [{"algorithm": "SHA1", "checksumValue": f.sha1},
                          {"algorithm": "SHA256", "checksumValue": f.sha256}],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        } for f in files],
        "relationships": relationships,
    }
    if extracted:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": name,
             "extractedText": f"The license named {name!r} in the package's Debian copyright file."}
            for ref, name in sorted(extracted.items())]
    return document


def serial_number(subject: Subject) -> str:
    """`urn:uuid:` + a UUID made from the manifest digest (the first 16 bytes, version 5 bits set)."""
    return uuid.UUID(bytes=bytes.fromhex(hex_of(subject.manifest_digest))[:16], version=5).urn


def cyclonedx_document(facts: ImageFacts, subject: Subject) -> dict[str, Any]:
    """The CycloneDX 1.5 BOM (JSON object) of one platform's image: the image is the metadata
    component, packages are components holding their files as nested components, files no
    package owns are top-level components."""
    owned: set[str] = set()
    components: list[dict[str, Any]] = []

    def file_component(path: str) -> dict[str, Any]:
        fact = facts.files[path]
        return {"type": "file", "bom-ref": f"file:/{fact.path}", "name": "/" + fact.path,
                "hashes": [{"alg": "SHA-1", "content": fact.sha1},
                           {"alg": "SHA-256", "content": fact.sha256}]}

    for package in facts.packages:
        ref = purl(package)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": package.name,
            "version": package.version,
            "purl": ref,
            "publisher": "Debian",
            "hashes": [{"alg": "SHA-256", "content": package.deb_sha256}],
            "properties": [
                {"name": "xarch:debian:architecture", "value": package.architecture},
                {"name": "xarch:debian:filename", "value": package.filename},
                {"name": "xarch:debian:source", "value": package.source},
                {"name": "xarch:debian:source_version", "value": package.source_version},
                {"name": "xarch:debian:suite", "value": package.suite},
            ],
        }
        expression = license_expression(package.licenses)
        if expression:
            component["licenses"] = [{"expression": expression}]
        mine = sorted((p for p in package.files if p in facts.files), key=_order)
        if mine:
            component["components"] = [file_component(p) for p in mine]
            owned.update(mine)
        components.append(component)
    loose = sorted((p for p in facts.files if p not in owned), key=_order)
    components += [file_component(p) for p in loose]
    image_ref = image_purl(subject)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial_number(subject),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(subject.epoch),
            "tools": {"components": [{"type": "application", "name": "xarch", "version": __version__}]},
            "component": {"type": "container", "bom-ref": image_ref, "name": subject.name,
                          "version": subject.tag, "purl": image_ref,
                          "hashes": [{"alg": "SHA-256", "content": hex_of(subject.manifest_digest)}],
                          "properties": [{"name": "xarch:platform",
                                          "value": platform_name(subject.platform)}]},
        },
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [purl(p) for p in facts.packages]}]
        + [{"ref": purl(p)} for p in facts.packages],
    }


def render(facts: ImageFacts, subject: Subject, fmt: str) -> bytes:
    """The SBOM of SUBJECT in FMT ("spdx" or "cyclonedx") as canonical JSON bytes.

    SPDX 2.3 or CycloneDX 1.5 JSON; ValueError for another FMT (the CLI offers only these two).
    """
    if fmt == "spdx":
        return canonical_json(spdx_document(facts, subject))
    if fmt == "cyclonedx":
        return canonical_json(cyclonedx_document(facts, subject))
    raise ValueError(f"unknown SBOM format {fmt!r}")
