"""SBOMs and provenance of a real build, attached beside the index (never inside it).

The archive is the hermetic signed repository of tests/support/aptrepo.py on 127.0.0.1, with
packages made here: one with a machine-readable (DEP-5) copyright file and a source package, one
whose copyright file is free text. The documents are checked with the maintained validators:
spdx-tools (validate_full_spdx_document) and cyclonedx-python-lib (its CycloneDX 1.5 JSON schema).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.aptrepo import AptRepo, FixturePackage, GpgKey, RepoServer, build_deb
from tests.support.e2e import (
    EPOCH,
    error_lines,
    image_files,
    index_digest,
    layout_bytes,
    manifests,
    xarch,
    xarch_ok,
)
from tests.support.needs import need_tool
from tests.support.referrers_server import ReferrersRegistry
from tests.support.registry import Registry
from xarch.oci.artifact import CYCLONEDX_JSON, IN_TOTO, SPDX_JSON

COPYRIGHT = b"""\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: app

Files: *
Copyright: 2024 Someone
License: GPL-2+

Files: lib/*
Copyright: 2024 Someone Else
License: Expat or custom-thing

License: GPL-2+
 This program is free software.

License: Expat
 Permission is hereby granted.

License: custom-thing
 Do what you like.
"""


def _packages() -> list[FixturePackage]:
    pkgs = []
    for arch in ("amd64", "arm64"):
        pkgs.append(FixturePackage(
            "app", "1:1.0-1+b1", arch, {"Source": "app-src (1.0-1)", "Depends": "libtext"},
            files={"usr/bin/app": f"#!/bin/sh\necho {arch}\n".encode(),
                   "usr/share/doc/app/copyright": COPYRIGHT}))
    pkgs.append(FixturePackage("libtext", "2.0", "all",
                               files={"usr/share/libtext/data": b"text\n",
                                      "usr/share/doc/libtext/copyright": b"Copyright 2020 A. Person.\n"}))
    return pkgs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for tool in ("dpkg-deb", "apt-ftparchive", "gpg", "gpgv"):
        need_tool(tool)
    work = tmp_path_factory.mktemp("sbom")
    key = GpgKey(work / "gnupg")
    repo = AptRepo(work / "repo", key)
    for pkg in _packages():
        repo.add(build_deb(pkg, work / "roots", work / "debs"))
    repo.publish(suite="bookworm")  # the purl says distro=debian-12
    server = RepoServer(repo.root)
    folder = work / "project"
    (folder / "etc").mkdir(parents=True)
    (folder / "etc" / "motd").write_text("hello\n")
    keyring = key.export(work / "keyring.gpg")
    (folder / "xarch.yaml").write_text(f"""\
name: sbom-e2e
tag: "1.0"
platforms: [amd64, arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
    mirror: {server.url}
    keyring: {keyring}
packages: [app]
files:
  - {{src: etc/motd, dst: /etc/motd}}
""")
    yield folder
    server.stop()


@pytest.fixture(scope="module")
def built(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("out")
    plain, attested = out / "plain", out / "attested"
    xarch_ok("build", "-f", str(project), "-o", f"oci:{plain}", "-q", cache=cache)
    xarch_ok("build", "-f", str(project), "-o", f"oci:{attested}", "--sbom", "--provenance", "-q",
             cache=cache)
    return {"plain": plain, "attested": attested, "cache": cache, "project": project}


def _attachments(layout: Path) -> list[tuple[dict, dict, bytes]]:
    """(index.json entry, manifest, payload) of every attachment, read with json, not xarch."""
    found = []
    for entry in json.loads((layout / "index.json").read_text())["manifests"][1:]:
        manifest = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_bytes())
        payload = (layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()
        found.append((entry, manifest, payload))
    return found


def _sbom(layout: Path, arch: str, media_type: str) -> dict:
    subject = manifests(layout)[arch]
    chosen = [json.loads(p) for e, m, p in _attachments(layout)
              if m["subject"]["digest"] == subject and e["artifactType"] == media_type]
    assert len(chosen) == 1
    return chosen[0]


def _locked(project: Path, arch: str) -> set[tuple[str, str, str]]:
    lock = yaml.safe_load((project / "xarch.lock").read_text())
    return {(p["name"], p["version"], p["architecture"]) for p in lock["packages"]["image"][arch]}


def test_attachments_leave_the_index_alone(built: dict[str, Path]) -> None:
    plain, attested = built["plain"], built["attested"]
    assert index_digest(plain) == index_digest(attested)
    plain_files, attested_files = layout_bytes(plain), layout_bytes(attested)
    # Every file of the plain layout is in the attested one with the same bytes; only index.json grows.
    for name, data in plain_files.items():
        if name != "index.json":
            assert attested_files[name] == data
    kinds = sorted((e["artifactType"], m["subject"]["digest"]) for e, m, _ in _attachments(attested))
    expected = sorted((kind, digest) for digest in manifests(attested).values()
                      for kind in (SPDX_JSON, CYCLONEDX_JSON, IN_TOTO))
    assert kinds == expected
    for entry, manifest, _ in _attachments(attested):
        assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        assert entry["artifactType"] == manifest["artifactType"]
        assert "org.opencontainers.image.ref.name" not in entry.get("annotations", {})


def test_attachments_are_reproducible(built: dict[str, Path], project: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    xarch_ok("build", "-f", str(project), "-o", f"oci:{again}", "--sbom", "--provenance", "--no-cache", "-q",
             cache=built["cache"])
    assert layout_bytes(again) == layout_bytes(built["attested"])


def test_spdx_lists_the_lock_and_the_files(built: dict[str, Path], project: Path) -> None:
    from spdx_tools.spdx.parser.json.json_parser import JsonLikeDictParser
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    for arch in ("amd64", "arm64"):
        document = _sbom(built["attested"], arch, SPDX_JSON)
        parsed = JsonLikeDictParser().parse(json.loads(json.dumps(document)))
        assert validate_full_spdx_document(parsed) == []
        debs = [p for p in document["packages"] if p["SPDXID"] != "SPDXRef-Image"]
        assert {(p["name"], p["versionInfo"], p["comment"].rsplit(" ", 1)[-1]) for p in debs} \
            == _locked(project, arch)
        app = next(p for p in debs if p["name"] == "app")
        assert app["externalRefs"][0]["referenceLocator"] \
            == f"pkg:deb/debian/app@1%3A1.0-1%2Bb1?arch={arch}&distro=debian-12"
        assert app["sourceInfo"] == "built from the Debian source package app-src 1.0-1"
        assert app["licenseDeclared"] == "(MIT OR LicenseRef-debian-custom-thing) AND GPL-2.0-or-later"
        lib = next(p for p in debs if p["name"] == "libtext")
        assert lib["licenseDeclared"] == "NOASSERTION"  # free-text copyright: no claim
        lock = yaml.safe_load((project / "xarch.lock").read_text())
        shas = {p["name"]: p["sha256"] for p in lock["packages"]["image"][arch]}
        assert {p["name"]: p["checksums"][0]["checksumValue"] for p in debs} == shas
        image = {path for path, member in image_files(built["attested"], arch).items() if member.type == b"0"}
        assert {f["fileName"].removeprefix("./") for f in document["files"]} == image
        ids = {f["fileName"]: f["SPDXID"] for f in document["files"]}
        contains = {(r["spdxElementId"], r["relatedSpdxElement"]) for r in document["relationships"]
                    if r["relationshipType"] == "CONTAINS"}
        assert (app["SPDXID"], ids["./usr/bin/app"]) in contains
        assert ("SPDXRef-Image", ids["./etc/motd"]) in contains  # the recipe's file: the image's own
        assert document["creationInfo"]["created"] == "2023-11-14T22:13:20Z"  # the epoch


def test_cyclonedx_validates_and_matches(built: dict[str, Path], project: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    for arch in ("amd64", "arm64"):
        bom = _sbom(built["attested"], arch, CYCLONEDX_JSON)
        assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(bom)) is None
        debs = [c for c in bom["components"] if c["type"] == "library"]
        assert {(c["name"], c["version"]) for c in debs} == {(n, v) for n, v, _ in _locked(project, arch)}
        files = {c["name"].lstrip("/") for c in bom["components"] if c["type"] == "file"}
        files |= {f["name"].lstrip("/") for c in debs for f in c.get("components", [])}
        image = {path for path, member in image_files(built["attested"], arch).items() if member.type == b"0"}
        assert files == image
        assert bom["metadata"]["component"]["hashes"][0]["content"] == manifests(built["attested"])[arch][7:]


def test_provenance_names_recipe_lock_and_debs(built: dict[str, Path], project: Path) -> None:
    import hashlib

    statement = _sbom(built["attested"], "arm64", IN_TOTO)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["digest"]["sha256"] == manifests(built["attested"])["arm64"][7:]
    definition = statement["predicate"]["buildDefinition"]
    recipe_sha = hashlib.sha256((project / "xarch.yaml").read_bytes()).hexdigest()
    lock_sha = hashlib.sha256((project / "xarch.lock").read_bytes()).hexdigest()
    assert definition["externalParameters"]["recipe"]["digest"]["sha256"] == recipe_sha
    assert definition["externalParameters"]["platforms"] == ["amd64", "arm64"]
    assert definition["internalParameters"]["epoch"] == EPOCH
    resolved = definition["resolvedDependencies"]
    assert resolved[0]["digest"]["sha256"] == lock_sha
    assert {r["uri"].split("@")[0] for r in resolved[1:]} == {"pkg:deb/debian/app", "pkg:deb/debian/libtext"}
    assert "startedOn" not in json.dumps(statement)


def test_bad_sbom_format_costs_no_build(project: Path, tmp_path: Path) -> None:
    result = xarch("build", "-f", str(project), "-o", f"oci:{tmp_path / 'x'}", "--sbom", "swid",
                   cache=tmp_path / "cache")
    assert result.returncode == 2
    assert "--sbom 'swid'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_oci_archive_output(built: dict[str, Path], project: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    xarch_ok("build", "-f", str(project), "-o", f"oci-archive:{archive}", "--sbom", "spdx", "-q",
             cache=built["cache"])
    unpacked = tmp_path / "unpacked"
    shutil.unpack_archive(archive, unpacked, "tar")
    assert index_digest(unpacked) == index_digest(built["plain"])
    assert [e["artifactType"] for e, _, _ in _attachments(unpacked)] == [SPDX_JSON, SPDX_JSON]


# ---- pushed: referrers in a registry ----------------------------------------------------------------


def _referrers(host: str, digest: str) -> list[dict]:
    from xarch.registry.client import RegistryClient
    from xarch.registry.referrers import list_referrers

    return list_referrers(RegistryClient(host), "sbom/app", digest).descriptors


def _push_verify_attest(host: str, built: dict[str, Path], project: Path, tmp_path: Path) -> None:
    ref = f"{host}/sbom/app:1.0"
    xarch_ok("build", "-f", str(project), "-o", f"oci:{tmp_path / 'out'}", "--sbom", "--provenance",
             "--push", ref, "-q", cache=built["cache"])
    layout = built["attested"]
    for arch, digest in manifests(layout).items():
        kinds = sorted(d["artifactType"] for d in _referrers(host, digest))
        assert kinds == sorted([SPDX_JSON, CYCLONEDX_JSON, IN_TOTO])
        printed = xarch_ok("sbom", ref, "--platform", arch, "--format", "cyclonedx", cache=built["cache"])
        assert json.loads(printed.stdout) == _sbom(layout, arch, CYCLONEDX_JSON)
    # A second builder rebuilds from the recipe and lock and attests that every digest matched.
    env = {"XARCH_BUILDER_ID": "https://ci.example/jobs/42"}
    verified = xarch_ok("verify", "-f", str(project), "--against", ref, "--attest", cache=built["cache"],
                        extra_env=env)
    assert "attached reproduction attestation" in verified.stderr
    index = index_digest(layout)
    attestations = _referrers(host, index)
    assert [d["annotations"]["in-toto.io/predicate-type"] for d in attestations] \
        == ["https://xarch.invalid/attestations/reproduction/v1"]
    inspected = xarch_ok("inspect", str(layout), "--json", cache=built["cache"])
    assert len(json.loads(inspected.stdout)["referrers"]) == 6
    # In the registry: the six of the layout, and the attestation of the index.
    listed = json.loads(xarch_ok("referrers", ref, "--json", cache=built["cache"]).stdout)
    assert sorted(row["subject"] for row in listed) == ["index"] + ["linux/amd64"] * 3 + ["linux/arm64"] * 3
    in_layout = {row["digest"] for row in json.loads(inspected.stdout)["referrers"]}
    assert {row["digest"] for row in listed} >= in_layout
    from xarch.registry.client import RegistryClient
    from xarch.registry.referrers import fetch_attachment

    _, payload = fetch_attachment(RegistryClient(host), "sbom/app", attestations[0])
    statement = json.loads(payload)
    assert statement["subject"][0]["digest"]["sha256"] == index[7:]
    assert statement["predicate"]["builder"]["id"] == "https://ci.example/jobs/42"
    assert statement["predicate"]["matched"] == {"index": index, **{
        f"linux/{arch}": digest for arch, digest in manifests(layout).items()}}


def test_push_and_attest_with_the_tag_schema(registry: Registry, built: dict[str, Path], project: Path,
                                             tmp_path: Path) -> None:
    _push_verify_attest(registry.host, built, project, tmp_path)


def test_push_and_attest_with_the_referrers_api(referrers_registry: ReferrersRegistry, built: dict[str, Path],
                                                project: Path, tmp_path: Path) -> None:
    _push_verify_attest(referrers_registry.host, built, project, tmp_path)
    assert any("/referrers/" in line for line in referrers_registry.state.requests)


def test_attest_needs_a_registry_image(built: dict[str, Path], project: Path) -> None:
    result = xarch("verify", "-f", str(project), "--against", f"oci:{built['plain']}", "--attest",
                   cache=built["cache"])
    assert result.returncode == 2
    assert "--attest: OCI layout folder" in result.stderr
    alone = xarch("verify", "-f", str(project), "--attest", cache=built["cache"])
    assert alone.returncode == 2 and error_lines(alone) == [
        "xarch: error: --attest: needs --against REF (the published image the attestation is about)"]


def test_skopeo_copies_the_image_and_the_referrers_tag(registry: Registry, built: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """skopeo 1.9 (bookworm) knows no referrers: `copy --all` copies the image alone; the referrers
    tag is a second copy, after which the attachments are listed (and read) at the destination."""
    need_tool("skopeo")
    import subprocess

    from xarch.registry.referrers import referrers_tag

    host = registry.host
    pushed = xarch_ok("push", str(built["attested"]), f"{host}/sbom/app:1.0", cache=built["cache"])
    assert "referrers: 6 attached (SBOMs, provenance) through the referrers tag" in pushed.stdout
    flags = ["--all", "--src-tls-verify=false", "--dest-tls-verify=false"]

    def copy(tag: str) -> None:
        subprocess.run(["skopeo", "copy", *flags, f"docker://{host}/sbom/app:{tag}", f"docker://{host}/copy/app:{tag}"],
                       check=True, capture_output=True)

    copy("1.0")
    amd64 = manifests(built["attested"])["amd64"]
    # From the layout too: skopeo reads the tagged image index and ignores the attachments beside it.
    subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{built['attested']}:1.0",
                    f"docker://{host}/from-layout/app:1.0"], check=True, capture_output=True)
    import requests

    served = requests.get(f"http://{host}/v2/from-layout/app/manifests/1.0", timeout=10,
                          headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    assert served.headers["Docker-Content-Digest"] == index_digest(built["attested"])
    from xarch.registry.client import RegistryClient
    from xarch.registry.referrers import list_referrers

    assert list_referrers(RegistryClient(host), "copy/app", amd64).descriptors == []
    copy(referrers_tag(amd64))
    copied = list_referrers(RegistryClient(host), "copy/app", amd64).descriptors
    assert sorted(d["artifactType"] for d in copied) == sorted([SPDX_JSON, CYCLONEDX_JSON, IN_TOTO])
    printed = xarch_ok("sbom", f"{host}/copy/app:1.0", "--platform", "amd64", cache=built["cache"])
    assert json.loads(printed.stdout) == _sbom(built["attested"], "amd64", SPDX_JSON)


def test_sbom_command_reads_a_layout(built: dict[str, Path], tmp_path: Path) -> None:
    layout = built["attested"]
    written = tmp_path / "arm64.spdx.json"
    xarch_ok("sbom", f"oci:{layout}", "--platform", "arm64", "-o", str(written), cache=built["cache"])
    assert json.loads(written.read_bytes()) == _sbom(layout, "arm64", SPDX_JSON)
    archive = tmp_path / "image.tar"
    xarch_ok("build", "-f", str(built["project"]), "-o", f"oci-archive:{archive}", "--sbom", "cyclonedx",
             "-q", cache=built["cache"])
    printed = xarch_ok("sbom", str(archive), "--format", "cyclonedx", "--platform", "amd64",
                       cache=built["cache"])
    assert json.loads(printed.stdout) == _sbom(layout, "amd64", CYCLONEDX_JSON)
    missing = xarch("sbom", str(built["plain"]), "--platform", "amd64", cache=built["cache"])
    assert missing.returncode == 2
    assert "no spdx SBOM is attached to linux/amd64" in missing.stderr
    assert "build with `xarch build --sbom spdx`" in missing.stderr
    wrong = xarch("sbom", str(layout), "--platform", "riscv64", cache=built["cache"])
    assert wrong.returncode == 2 and "has no such image" in wrong.stderr
    listed = xarch_ok("inspect", str(layout), cache=built["cache"])
    assert listed.stdout.count("referrer sha256:") == 6


def test_single_platform_layout_with_attachments_is_still_one_image(built: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """Readers that take the layout's only image (xarch load) skip the attachments beside it."""
    from xarch.docker.load import read_layout_image

    layout = tmp_path / "one"
    xarch_ok("build", "-f", str(built["project"]), "--platform", "arm64", "--sbom", "-o", f"oci:{layout}",
             "-q", cache=built["cache"])
    assert len(json.loads((layout / "index.json").read_text())["manifests"]) == 3
    image = read_layout_image(layout, None)  # no --platform: the only image, whatever the host
    assert image.platform["architecture"] == "arm64"


def _damaged_copy(built: dict[str, Path], tmp_path: Path) -> tuple[Path, dict, dict]:
    layout = tmp_path / "damaged"
    shutil.copytree(built["attested"], layout)
    entry, manifest, _ = _attachments(layout)[0]
    return layout, entry, manifest


def test_damaged_attachments_are_one_line_errors(built: dict[str, Path], tmp_path: Path) -> None:
    """Attachments are input like any other: a payload that does not match its digest, a manifest
    that is not JSON, an entry whose descriptor is wrong — each is exit 2 and one line."""
    layout, entry, manifest = _damaged_copy(built, tmp_path)
    payload = layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    payload.write_bytes(payload.read_bytes()[:-1] + b"!")
    for args in (["inspect", str(layout)], ["sbom", str(layout), "--platform", "amd64"]):
        result = xarch(*args, cache=built["cache"])
        assert result.returncode == 2, (args, result.stderr)
        assert len(error_lines(result)) == 1 and manifest["layers"][0]["digest"] in result.stderr
    shutil.rmtree(layout)
    layout, entry, manifest = _damaged_copy(built, tmp_path)
    top = json.loads((layout / "index.json").read_text())
    top["manifests"][1]["size"] = "many"
    (layout / "index.json").write_text(json.dumps(top))
    result = xarch("sbom", str(layout), "--platform", "amd64", cache=built["cache"])
    assert result.returncode == 2 and len(error_lines(result)) == 1 and "size" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_artifact_about_nothing_is_not_an_attachment(built: dict[str, Path], tmp_path: Path) -> None:
    layout, entry, manifest = _damaged_copy(built, tmp_path)
    del manifest["subject"]
    data = json.dumps(manifest).encode()
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    top = json.loads((layout / "index.json").read_text())
    top["manifests"][1].update(digest=digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(top))
    listed = xarch_ok("inspect", str(layout), "--json", cache=built["cache"])
    assert len(json.loads(listed.stdout)["referrers"]) == 5


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_every_file_of_a_layer_past_its_first_mib_is_listed(tmp_path: Path, algorithm: str) -> None:
    """Found by CI: tarfile's stream mode reads only a gzip layer's first member, and xarch writes
    one member per 1 MiB, so `--sbom` failed on any layer over 1 MiB; zstd it did not read at all."""
    import os

    folder = tmp_path / "p"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "a-big").write_bytes(os.urandom(3 << 20))
    (folder / "data" / "z-last").write_text("after the first MiB\n")
    (folder / "xarch.yaml").write_text(
        f"name: big\nplatforms: [amd64]\nepoch: 1\ncompression: {{algorithm: {algorithm}}}\n"
        "files:\n  - {src: data, dst: /data}\n")
    out = tmp_path / "out"
    xarch_ok("build", "-q", "-f", str(folder), "--sbom", "spdx", "-o", f"oci:{out}", cache=tmp_path / "cache")
    document = json.dumps(_sbom(out, "amd64", SPDX_JSON))
    assert "/data/a-big" in document and "/data/z-last" in document
