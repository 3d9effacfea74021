"""cosign-compatible signing: xarch signs → the real `cosign verify` accepts; cosign signs → xarch accepts.

The real tools are the oracle (Debian trixie's cosign 2.5 and oras 1.2, scripts/setup-host), against a
real docker-registry on 127.0.0.1. Offline: cosign runs with --insecure-ignore-tlog (no Rekor) and key
files from `cosign generate-key-pair`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.e2e import xarch
from tests.support.inprocess import xarch_in_process
from tests.support.needs import need_tool
from tests.support.registry import Registry, _start_registry, make_layout
from xarch.registry.client import Settings
from xarch.registry.push import push_layout
from xarch.registry.reference import parse_reference
from xarch.sign.actions import sign_reproduction
from xarch.sign.cosign import (
    ARTIFACT_SIG,
    StoredLayer,
    attest_image,
    signature_manifest,
    signature_tag,
    statement_for,
)
from xarch.sign.keys import load_signing_key

PASSWORD = "correct horse battery staple"
REPRODUCED = "https://xarch.dev/attestations/reproduction/v1"
# The flags cosign 2.5 needs for a plain-HTTP registry on 127.0.0.1 and no transparency log.
OFFLINE = ["--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry"]


def cosign(*args: str, password: str = PASSWORD, cwd: Path | None = None,
           **env: str) -> subprocess.CompletedProcess[str]:
    binary = need_tool("cosign")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
                          env={**os.environ, "COSIGN_PASSWORD": password, **env})


@dataclass
class Keys:
    private: Path
    public: Path


def make_keys(folder: Path, password: str = PASSWORD) -> Keys:
    folder.mkdir(parents=True)
    made = cosign("generate-key-pair", password=password, cwd=folder)
    assert made.returncode == 0, made.stderr
    return Keys(folder / "cosign.key", folder / "cosign.pub")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    running = _start_registry(tmp_path_factory.mktemp("sign-registry"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys") / "a")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys") / "b", password="another")


@dataclass
class Pushed:
    ref: str  # host/repo:tag
    index: str
    manifests: dict[str, str]  # linux/amd64 -> digest

    def at(self, digest: str) -> str:
        return self.ref.rsplit(":", 1)[0] + "@" + digest


def push(registry: Registry, tmp: Path, repo: str, seed: int = 1) -> Pushed:
    make_layout(tmp / f"layout-{repo}-{seed}", ["amd64", "arm64"], seed=seed)
    result = push_layout(tmp / f"layout-{repo}-{seed}", f"{registry.host}/{repo}:v1")
    return Pushed(f"{registry.host}/{repo}:v1", result.digest, dict(result.manifests))


def tags(registry: Registry, repo: str) -> set[str]:
    answer = requests.get(f"http://{registry.host}/v2/{repo}/tags/list", timeout=10).json()
    return set(answer["tags"])


def manifest_digest(registry: Registry, repo: str, reference: str) -> str:
    answer = requests.head(f"http://{registry.host}/v2/{repo}/manifests/{reference}", timeout=10, headers={
        "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"})
    return answer.headers["Docker-Content-Digest"]


def signed_with_xarch(pushed: Pushed, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    outcome = xarch_in_process("sign", pushed.ref, "--key", str(keys.private))
    assert outcome.code == 0, outcome.stderr


def test_cosign_verifies_what_xarch_signs_and_digests_stay(registry: Registry, keys: Keys, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = push(registry, tmp_path, "signed-by-xarch")
    signed_with_xarch(pushed, keys, monkeypatch)
    # Signatures are separate objects: the tag still names the same index, and nothing was re-pushed.
    assert manifest_digest(registry, "signed-by-xarch", "v1") == pushed.index
    signed = [pushed.index, *pushed.manifests.values()]
    # cosign's .sig tags, and the referrers tags (distribution-spec's fallback) of the OCI 1.1 form.
    assert {signature_tag(d) for d in signed} | {d.replace(":", "-") for d in signed} | {"v1"} \
        == tags(registry, "signed-by-xarch")
    for digest in signed:  # oras, another client, finds each signature as a referrer
        found = subprocess.run([need_tool("oras"), "discover", "--plain-http", "--format", "json",
                                pushed.at(digest)], capture_output=True, text=True, timeout=60, check=False)
        assert found.returncode == 0, found.stderr
        kinds = [r.get("artifactType") for r in json.loads(found.stdout).get("referrers") or
                 json.loads(found.stdout).get("manifests") or []]
        assert kinds == ["application/vnd.dev.cosign.artifact.sig.v1+json"], found.stdout
    for digest in [pushed.index, *pushed.manifests.values()]:
        checked = cosign("verify", "--key", str(keys.public), *OFFLINE, pushed.at(digest))
        assert checked.returncode == 0, checked.stderr
        payload = json.loads(checked.stdout)[0]
        assert payload["critical"]["image"]["docker-manifest-digest"] == digest
        assert payload["critical"]["identity"]["docker-reference"] == f"{registry.host}/signed-by-xarch"
    # Signing again adds nothing: one signature per manifest and key.
    assert xarch_in_process("sign", pushed.ref, "--key", str(keys.private)).code == 0
    listed = xarch_in_process("inspect", pushed.ref, "--json")
    assert listed.code == 0, listed.stderr
    parts = json.loads(listed.stdout)["parts"]
    assert [(p["name"], p["digest"], p["signatures"]) for p in parts] == [
        ("index", pushed.index, 1), *((name, digest, 1) for name, digest in pushed.manifests.items())]


def test_cosign_refuses_xarch_signature_under_another_key(
        registry: Registry, keys: Keys, other_keys: Keys, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = push(registry, tmp_path, "cosign-wrong-key")
    signed_with_xarch(pushed, keys, monkeypatch)
    checked = cosign("verify", "--key", str(other_keys.public), *OFFLINE, pushed.at(pushed.index))
    assert checked.returncode != 0
    assert "no matching signatures" in checked.stderr


def test_xarch_verifies_what_cosign_signs(registry: Registry, keys: Keys, other_keys: Keys,
                                          tmp_path: Path) -> None:
    pushed = push(registry, tmp_path, "signed-by-cosign")
    signed = cosign("sign", "--key", str(keys.private), "--tlog-upload=false", "-y", "--recursive",
                    "--allow-http-registry", "--allow-insecure-registry", pushed.at(pushed.index))
    assert signed.returncode == 0, signed.stderr
    outcome = xarch_in_process("verify-signature", pushed.ref, "--key", str(keys.public))
    assert outcome.code == 0, outcome.stderr
    assert f"verified {pushed.at(pushed.index)}: 3 manifest(s)" in outcome.stdout
    wrong = xarch_in_process("verify-signature", pushed.ref, "--key", str(other_keys.public))
    assert wrong.code == 1
    wrong.one_error_line(pushed.at(pushed.index), "(index)", f"no signature by {other_keys.public}")


def test_an_index_signed_without_its_manifests_is_refused_naming_the_manifest(
        registry: Registry, keys: Keys, tmp_path: Path) -> None:
    pushed = push(registry, tmp_path, "index-only")
    signed = cosign("sign", "--key", str(keys.private), "--tlog-upload=false", "-y",
                    "--allow-http-registry", "--allow-insecure-registry", pushed.at(pushed.index))
    assert signed.returncode == 0, signed.stderr
    outcome = xarch_in_process("verify-signature", pushed.ref, "--key", str(keys.public))
    assert outcome.code == 1
    amd64 = pushed.manifests["linux/amd64"]
    outcome.one_error_line(pushed.at(amd64), "(linux/amd64)", f"not signed (no {signature_tag(amd64)})")


def test_unsigned_and_repushed_images_are_refused(registry: Registry, keys: Keys, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    unsigned = push(registry, tmp_path, "unsigned")
    outcome = xarch_in_process("verify-signature", unsigned.ref, "--key", str(keys.public))
    assert outcome.code == 1
    outcome.one_error_line(unsigned.at(unsigned.index), "(index)", "not signed")
    # Signed, then another image pushed under the same tag: the tag names bytes nobody signed.
    pushed = push(registry, tmp_path, "repushed")
    signed_with_xarch(pushed, keys, monkeypatch)
    again = push(registry, tmp_path, "repushed", seed=2)
    assert again.index != pushed.index
    outcome = xarch_in_process("verify-signature", pushed.ref, "--key", str(keys.public))
    assert outcome.code == 1
    outcome.one_error_line(again.at(again.index), "(index)", "not signed")
    # A signature moved onto another manifest (a copied .sig tag) verifies, but signs another digest.
    amd64, arm64 = again.manifests["linux/amd64"], again.manifests["linux/arm64"]
    for digest in (again.index, amd64):
        assert xarch_in_process("sign", again.at(digest), "--key", str(keys.private)).code == 0
    moved = requests.get(f"http://{registry.host}/v2/repushed/manifests/{signature_tag(amd64)}", timeout=10,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    put = requests.put(f"http://{registry.host}/v2/repushed/manifests/{signature_tag(arm64)}", timeout=10,
                       data=moved.content,
                       headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 201
    outcome = xarch_in_process("verify-signature", again.ref, "--key", str(keys.public))
    assert outcome.code == 1
    outcome.one_error_line(again.at(arm64), "(linux/arm64)", "signs another digest")
    assert cosign("verify", "--key", str(keys.public), *OFFLINE, again.at(arm64)).returncode != 0


def test_attestation_cosign_verifies(registry: Registry, keys: Keys, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = push(registry, tmp_path, "attested")
    statement = tmp_path / "statement.json"
    statement.write_bytes(statement_for(parse_reference(pushed.ref), pushed.index, REPRODUCED,
                                        {"rebuilt": "same"}))
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    attested = xarch_in_process("attest", pushed.ref, "--key", str(keys.private),
                                "--statement", str(statement))
    assert attested.code == 0, attested.stderr
    assert attested.stdout == f"attested {pushed.at(pushed.index)} ({REPRODUCED}) with {keys.private}\n"
    checked = cosign("verify-attestation", "--key", str(keys.public), "--type", REPRODUCED, *OFFLINE,
                     pushed.at(pushed.index))
    assert checked.returncode == 0, checked.stderr
    listed = xarch_in_process("inspect", pushed.ref)
    assert listed.code == 0, listed.stderr
    assert f"index        {pushed.index}  signatures: 0  attestations: {REPRODUCED}" in listed.stdout
    # oras, another registry client, reads the same manifest: a DSSE layer with its predicate type.
    fetched = subprocess.run([need_tool("oras"), "manifest", "fetch", "--plain-http",
                              f"{registry.host}/attested:{signature_tag(pushed.index, 'att')}"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert fetched.returncode == 0, fetched.stderr
    layer = json.loads(fetched.stdout)["layers"][0]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"]["predicateType"] == REPRODUCED
    # The library calls the reproduction attestation uses: the same kind of object, more layers.
    key = load_signing_key(keys.private, PASSWORD.encode())
    pinned, predicate_type = attest_image(pushed.ref, statement.read_bytes(), key, Settings())
    assert (pinned.digest, predicate_type) == (pushed.index, REPRODUCED)
    said: list[str] = []
    reporter = type("Said", (), {"info": lambda self, text: said.append(text)})()
    sign_reproduction(pushed.ref, statement.read_bytes(), key, Settings(), reporter)
    assert said == [f"signed {REPRODUCED} attestation of {pushed.at(pushed.index)} with {keys.private}"]
    assert xarch_in_process("inspect", pushed.ref, "--json").stdout.count(REPRODUCED) == 3


def test_an_attestation_about_another_digest_is_refused(registry: Registry, keys: Keys, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = push(registry, tmp_path, "attest-wrong")
    statement = tmp_path / "amd64.json"
    statement.write_bytes(statement_for(parse_reference(pushed.ref), pushed.manifests["linux/amd64"],
                                        REPRODUCED, {}))
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    refused = xarch_in_process("attest", pushed.ref, "--key", str(keys.private),
                               "--statement", str(statement))
    assert refused.code == 2
    refused.one_error_line(f"--statement {statement}: in-toto statement: no subject has the digest "
                           f"{pushed.index}")
    assert signature_tag(pushed.index, "att") not in tags(registry, "attest-wrong")


def test_key_passwords(registry: Registry, keys: Keys, tmp_path: Path) -> None:
    """From $COSIGN_PASSWORD or --password-stdin; a wrong or missing one is one line, never echoed."""
    pushed = push(registry, tmp_path, "passwords")
    env = {"COSIGN_PASSWORD": "wrong-password-xyzzy"}
    wrong = xarch("sign", pushed.ref, "--key", str(keys.private), cache=tmp_path / "c", extra_env=env)
    assert wrong.returncode == 2
    assert wrong.stderr == f"xarch: error: private key {keys.private}: wrong password (from " \
                           "$COSIGN_PASSWORD or --password-stdin), or the file is damaged\n"
    assert "xyzzy" not in wrong.stdout + wrong.stderr
    env = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    stdin = subprocess.run([sys.executable, "-m", "xarch.cli", "sign", pushed.ref, "--key", str(keys.private),
                            "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True,
                           env=env, timeout=120, check=False)
    assert stdin.returncode == 0, stdin.stderr
    assert PASSWORD not in stdin.stdout + stdin.stderr
    none = subprocess.run([sys.executable, "-m", "xarch.cli", "sign", pushed.ref, "--key", str(keys.private)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
                          env=env)
    assert none.returncode == 2
    assert none.stderr.endswith("no password: set $COSIGN_PASSWORD or pass --password-stdin\n")
    public = xarch_in_process("sign", pushed.ref, "--key", str(keys.public))
    assert public.code == 2
    public.one_error_line(f"private key {keys.public}: no PEM block ENCRYPTED SIGSTORE PRIVATE KEY")
    checked = cosign("verify", "--key", str(keys.public), *OFFLINE, pushed.at(pushed.index))
    assert checked.returncode == 0, checked.stderr


# ---- build --push --sign-key, verify --against --key ----------------------------------------------


@pytest.mark.slow  # four builds and rebuilds of a small recipe
def test_build_push_signs_and_verify_against_checks_first(registry: Registry, keys: Keys, other_keys: Keys,
                                                          tmp_path: Path) -> None:
    from tests.integration.test_e2e_publish import MATCH, make_recipe, rows
    from tests.support.e2e import index_digest, manifests

    recipe = make_recipe(tmp_path / "src")
    signed_ref, unsigned_ref = f"{registry.host}/e2e/signed:v1", f"{registry.host}/e2e/unsigned:v1"
    password = {"COSIGN_PASSWORD": PASSWORD}
    # The key is opened before the build: a wrong password or a missing --push costs no build.
    for args, env in [(["--sign-key", str(keys.private)], password),
                      (["--push", signed_ref, "--insecure", "--sign-key", str(keys.private)],
                       {"COSIGN_PASSWORD": "wrong"})]:
        refused = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'never'}", *args,
                        cache=tmp_path / "never-cache", extra_env=env)
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert not (tmp_path / "never-cache").exists() and not (tmp_path / "never").exists()
    out = tmp_path / "out"
    built = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", "--push", signed_ref, "--insecure",
                  "--sign-key", str(keys.private), cache=tmp_path / "cache", extra_env=password)
    assert built.returncode == 0, built.stderr
    index = index_digest(out)
    for digest in [index, *manifests(out).values()]:  # the local layout's digests are what was signed
        checked = cosign("verify", "--key", str(keys.public), *OFFLINE,
                         f"{registry.host}/e2e/signed@{digest}")
        assert checked.returncode == 0, checked.stderr
    verified = xarch("verify", "-f", str(recipe), "--against", signed_ref, "--insecure", "--key",
                     str(keys.public), cache=tmp_path / "verify-cache")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert rows(verified.stdout) == MATCH
    assert f"signed by {keys.public}" in verified.stderr
    # The private key checks too (its public half): the key that can also sign the reproduction attestation.
    with_private = xarch("verify", "-f", str(recipe), "--against", signed_ref, "--insecure", "--key",
                         str(keys.private), cache=tmp_path / "verify-cache", extra_env=password)
    assert with_private.returncode == 0, with_private.stderr
    assert f"3 manifest(s) of {registry.host}/e2e/signed@{index} signed by {keys.private}" \
        in with_private.stderr
    # With the private key, --attest also stores the reproduction attestation signed: cosign accepts it.
    attested = xarch("verify", "-f", str(recipe), "--against", signed_ref, "--insecure", "--key",
                     str(keys.private), "--attest", cache=tmp_path / "verify-cache", extra_env=password)
    assert attested.returncode == 0, attested.stderr
    from xarch.sbom.provenance import REPRODUCTION

    checked = cosign("verify-attestation", "--key", str(keys.public), "--type", REPRODUCTION, *OFFLINE,
                     f"{registry.host}/e2e/signed@{index}")
    assert checked.returncode == 0, checked.stderr
    # Unsigned, or signed by another key: exit 1 naming the index, and no rebuild (its cache never made).
    pushed = xarch("build", "-f", str(recipe), "-q", "--push", unsigned_ref, "--insecure", "-o",
                   f"oci:{tmp_path / 'out2'}", cache=tmp_path / "cache")
    assert pushed.returncode == 0, pushed.stderr
    for ref, key, why in [(unsigned_ref, keys.public, "not signed"),
                          (signed_ref, other_keys.public, f"no signature by {other_keys.public}")]:
        refused = xarch("verify", "-f", str(recipe), "--against", ref, "--insecure", "--key", str(key),
                        cache=tmp_path / "refused-cache")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        line = refused.stderr.splitlines()[-1]
        assert line.startswith(f"xarch: error: {ref.rsplit(':', 1)[0]}@{index} (index): {why}"), line
        assert not (tmp_path / "refused-cache").exists()
    local = xarch("verify", "-f", str(recipe), "--against", str(out), "--key", str(keys.public),
                  cache=tmp_path / "refused-cache")
    assert local.returncode == 2
    assert local.stderr.splitlines()[-1].endswith("has no signatures; cosign signatures live in a registry")


def _key_file(path: Path, envelope: object) -> Path:
    body = base64.b64encode(json.dumps(envelope).encode()).decode()
    path.write_text(f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}\n"
                    "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    return path


def test_hostile_key_files_are_one_line_each(keys: Keys, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file is input: whatever it holds, one line naming it and exit 2, within bounded memory."""
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    real = json.loads(base64.b64decode("".join(keys.private.read_text().splitlines()[1:-1])))
    cases = {
        "not PEM": ("garbage\n", "no PEM block ENCRYPTED SIGSTORE PRIVATE KEY"),
        "not base64": ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n!!!\n"
                       "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "the PEM body is not base64"),
        "huge scrypt": ({**real, "kdf": {**real["kdf"], "params": {"N": 1 << 30, "r": 8, "p": 1}}},
                        "scrypt N=1073741824 r=8 p=1 out of bounds"),
        "not scrypt": ({**real, "kdf": {"name": "pbkdf2"}}, "kdf must be scrypt"),
        "other cipher": ({**real, "cipher": {"name": "aes", "nonce": "AAAA"}},
                         "cipher must be nacl/secretbox"),
        "short nonce": ({**real, "cipher": {"name": "nacl/secretbox", "nonce": "AAAA"}}, "nonce is 3 bytes"),
        "cut ciphertext": ({**real, "ciphertext": real["ciphertext"][:40]}, "wrong password"),
        "list": ([1, 2], "the PEM body is not a JSON object"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.key"
        if isinstance(content, str):
            path.write_text(content)
        else:
            _key_file(path, content)
        outcome = xarch_in_process("sign", "127.0.0.1:1/never:v1", "--key", str(path))
        assert outcome.code == 2, (name, outcome.stderr)
        outcome.one_error_line(f"private key {path}: {message}")
    big = tmp_path / "big.key"
    big.write_bytes(b"x" * 100_000)
    xarch_in_process("sign", "127.0.0.1:1/never:v1", "--key", str(big)).one_error_line("not a key file")
    bad_pub = xarch_in_process("verify-signature", "127.0.0.1:1/never:v1", "--key", str(tmp_path / "big.key"))
    assert bad_pub.code == 2


def _stored(manifest: bytes) -> list[StoredLayer]:
    return [StoredLayer(item["mediaType"], item["digest"], item["size"], item.get("annotations", {}))
            for item in json.loads(manifest)["layers"]]


def test_xarch_writes_cosigns_manifest_bytes_in_both_forms(registry: Registry, keys: Keys,
                                                           tmp_path: Path) -> None:
    """Given the signature layers cosign stored, xarch's manifest (and config) are cosign's bytes: the tag
    form, and the OCI 1.1 referrer form cosign writes with --registry-referrers-mode=oci-1-1."""
    pushed = push(registry, tmp_path, "same-bytes")
    amd64 = pushed.manifests["linux/amd64"]
    common = ["--key", str(keys.private), "--tlog-upload=false", "-y", "--allow-http-registry",
              "--allow-insecure-registry"]
    for _ in range(2):  # two signatures: a manifest of two layers
        assert cosign("sign", *common, pushed.at(amd64)).returncode == 0
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"}
    base = f"http://{registry.host}/v2/same-bytes"
    tagged = requests.get(f"{base}/manifests/{signature_tag(amd64)}", headers=accept, timeout=10).content
    manifest, config = signature_manifest(_stored(tagged))
    assert manifest == tagged
    config_digest = json.loads(tagged)["config"]["digest"]
    assert requests.get(f"{base}/blobs/{config_digest}", timeout=10).content == config
    # The referrer form: docker-registry 2.8 has no referrers API, so cosign keeps the referrers tag.
    made = cosign("sign", *common, "--registry-referrers-mode=oci-1-1", pushed.at(amd64),
                  COSIGN_EXPERIMENTAL="1")
    assert made.returncode == 0, made.stderr
    listing = requests.get(f"{base}/manifests/sha256-{amd64.removeprefix('sha256:')}", headers=accept,
                           timeout=10).json()
    (entry,) = listing["manifests"]
    assert entry["artifactType"] == ARTIFACT_SIG
    referrer = requests.get(f"{base}/manifests/{entry['digest']}", headers=accept, timeout=10).content
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64,
               "size": len(requests.get(f"{base}/manifests/{amd64}", headers=accept, timeout=10).content)}
    assert signature_manifest(_stored(referrer), subject)[0] == referrer


def test_hostile_signature_manifests_are_one_line_each(registry: Registry, keys: Keys,
                                                       tmp_path: Path) -> None:
    """What a registry stores under a .sig tag is input too: a layer that claims a huge payload, a
    signature that is not base64, a signed payload that names no digest. Each is one line: exit 4 (the
    registry's answer is wrong) or a refusal naming the manifest (exit 1); never a traceback."""
    pushed = push(registry, tmp_path, "hostile-sig")
    base = f"http://{registry.host}/v2/hostile-sig"
    payload = b'{"critical":{}}'
    digests = {}
    for blob in (b"{}", payload):  # POST, then one PUT of the whole blob
        digests[blob] = "sha256:" + hashlib.sha256(blob).hexdigest()
        location = requests.post(f"{base}/blobs/uploads/", timeout=10).headers["Location"]
        location = location if location.startswith("http") else f"http://{registry.host}{location}"
        sep = "&" if "?" in location else "?"
        put = requests.put(f"{location}{sep}digest={digests[blob]}", data=blob, timeout=10,
                           headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": digests[b"{}"]}
    layer = {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": len(payload),
             "digest": digests[payload]}
    cases = [
        ({**layer, "size": 1 << 30, "annotations": {"dev.cosignproject.cosign/signature": "AAAA"}},
         4, "signature payload; cosign writes small ones"),
        ({**layer, "annotations": {"dev.cosignproject.cosign/signature": "%%% not base64"}},
         1, f"no signature by {keys.public}"),
        # Signed by the key, but a payload that names no digest at all.
        ({**layer, "annotations": {"dev.cosignproject.cosign/signature": base64.b64encode(
            load_signing_key(keys.private, PASSWORD.encode()).sign(payload)).decode()}},
         1, "signs another digest"),
    ]
    for bad_layer, code, message in cases:
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config, "layers": [bad_layer]}
        put = requests.put(f"{base}/manifests/{signature_tag(pushed.index)}", data=json.dumps(manifest),
                           headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
        assert put.status_code == 201, put.text
        outcome = xarch_in_process("verify-signature", pushed.ref, "--key", str(keys.public))
        assert outcome.code == code, (bad_layer, outcome.stderr)
        outcome.one_error_line(message)


def test_an_ed25519_key_imported_into_cosign_signs_too(registry: Registry, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """cosign import-key-pair turns an Ed25519 key into a cosign key file; xarch signs with it and cosign
    verifies (ECDSA P-256, generate-key-pair's kind, is every other test's)."""
    folder = tmp_path / "ed25519"
    folder.mkdir()
    made = subprocess.run([need_tool("openssl"), "genpkey", "-algorithm", "ed25519", "-out", "ed.pem"],
                          cwd=folder, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    imported = cosign("import-key-pair", "--key", "ed.pem", "--output-key-prefix", "ed", cwd=folder)
    assert imported.returncode == 0, imported.stderr
    pushed = push(registry, tmp_path, "ed25519")
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    assert xarch_in_process("sign", pushed.ref, "--key", str(folder / "ed.key")).code == 0
    checked = cosign("verify", "--key", str(folder / "ed.pub"), *OFFLINE, pushed.at(pushed.index))
    assert checked.returncode == 0, checked.stderr
    assert xarch_in_process("verify-signature", pushed.ref, "--key", str(folder / "ed.pub")).code == 0
