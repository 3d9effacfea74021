"""Attachments in a registry: the referrers API (a minimal spec server) and the referrers tag schema
(Debian's docker-registry 2.8, which has no API)."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.support.referrers_server import ReferrersRegistry
from tests.support.registry import Registry, make_layout
from xarch.oci.artifact import IN_TOTO, SPDX_JSON, attachment
from xarch.oci.digest import OCI_MANIFEST, Descriptor
from xarch.registry.client import RegistryClient, Settings
from xarch.registry.push import push_layout
from xarch.registry.referrers import fetch_attachment, list_referrers, push_attachment, referrers_tag

FAST = Settings(backoff=0.05, max_backoff=0.5)


def _pushed(host: str, tmp_path: Path) -> tuple[RegistryClient, Descriptor]:
    layout = make_layout(tmp_path / "layout", ["amd64"], tag="v1")
    result = push_layout(layout.path, f"{host}/demo/app:v1", settings=FAST)
    digest = result.manifests["linux/amd64"]
    subject = Descriptor(OCI_MANIFEST, digest, len(layout.manifests["amd64"]))
    return RegistryClient(host, settings=FAST), subject


def _round_trip(client: RegistryClient, subject: Descriptor, expected_via: str) -> None:
    sbom = attachment(SPDX_JSON, b'{"spdxVersion":"SPDX-2.3"}', subject, annotations={"a": "1"})
    statement = attachment(IN_TOTO, b'{"_type":"https://in-toto.io/Statement/v1"}', subject)
    assert push_attachment(client, "demo/app", sbom) == expected_via
    assert push_attachment(client, "demo/app", statement) == expected_via
    assert push_attachment(client, "demo/app", sbom) == expected_via  # again: listed once
    found = list_referrers(client, "demo/app", subject.digest)
    assert found.via == expected_via
    assert sorted(d["digest"] for d in found.descriptors) == sorted([sbom.digest, statement.digest])
    by_digest = {d["digest"]: d for d in found.descriptors}
    assert by_digest[sbom.digest]["artifactType"] == SPDX_JSON
    assert by_digest[sbom.digest]["annotations"] == {"a": "1"}
    only = list_referrers(client, "demo/app", subject.digest, artifact_type=IN_TOTO)
    assert [d["digest"] for d in only.descriptors] == [statement.digest]
    manifest, payload = fetch_attachment(client, "demo/app", by_digest[sbom.digest])
    assert payload == b'{"spdxVersion":"SPDX-2.3"}'
    assert manifest["subject"]["digest"] == subject.digest
    other = "sha256:" + "0" * 64
    assert list_referrers(client, "demo/app", other).descriptors == []


def test_tag_schema_on_docker_registry_2_8(registry: Registry, tmp_path: Path) -> None:
    client, subject = _pushed(registry.host, tmp_path)
    # docker-registry 2.8 has no referrers endpoint: the spec's fallback tag holds the list.
    answer = requests.get(f"http://{registry.host}/v2/demo/app/referrers/{subject.digest}", timeout=10)
    assert answer.status_code == 404
    _round_trip(client, subject, "tag")
    tagged = requests.get(f"http://{registry.host}/v2/demo/app/manifests/{referrers_tag(subject.digest)}",
                          headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=10)
    assert tagged.status_code == 200
    assert len(json.loads(tagged.content)["manifests"]) == 2


def test_referrers_api(referrers_registry: ReferrersRegistry, tmp_path: Path) -> None:
    client, subject = _pushed(referrers_registry.host, tmp_path)
    _round_trip(client, subject, "api")
    # A registry with the API needs no fallback tag: none was written or read.
    assert not any(referrers_tag(subject.digest) in line for line in referrers_registry.state.requests)


def test_a_hostile_referrers_answer_is_refused(referrers_registry: ReferrersRegistry, tmp_path: Path) -> None:
    """A listing whose digest is not sha256:<64 hex> is the registry's fault (exit 4), never a URL."""
    import pytest

    from xarch.errors import ExitCode
    from xarch.registry.errors import CorruptAnswer

    client, subject = _pushed(referrers_registry.host, tmp_path)
    tag = referrers_tag(subject.digest)
    bad = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:../../../v2/_catalog", "size": 1}]}).encode()
    # Served as the referrers tag, read as the fallback reads it (this server's API lists only
    # manifests it stored, which are well-formed).
    referrers_registry.state.manifests[("demo/app", tag)] = (bad, "application/vnd.oci.image.index.v1+json")
    with pytest.raises(CorruptAnswer) as caught:
        from xarch.registry import referrers

        referrers._tag_index(client, "demo/app", subject.digest)
    assert caught.value.exit_code == ExitCode.NETWORK
    assert "sha256:<64 hex digits>" in str(caught.value)
