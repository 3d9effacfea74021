"""Cosign's storage of signatures and attestations in a registry, written and checked natively.

What cosign 2.x does with a key (no Fulcio certificate, no Rekor entry), and so what `cosign verify
--key` and `cosign verify-attestation --key` accept:

- A signature of the manifest (or index) DIGEST is a layer of the OCI image manifest tagged
  `sha256-<hex>.sig` in the same repository: mediaType `application/vnd.dev.cosign.simplesigning.v1+json`,
  the blob is the simple-signing payload

      {"critical":{"identity":{"docker-reference":REPO},"image":{"docker-manifest-digest":DIGEST},
       "type":"cosign container image signature"},"optional":null}

  and the annotation `dev.cosignproject.cosign/signature` holds the base64 signature over the blob.
  More signatures are more layers of the same manifest.
- An attestation is a layer of the manifest tagged `sha256-<hex>.att`: mediaType
  `application/vnd.dsse.envelope.v1+json`, the blob a DSSE envelope whose payload (type
  `application/vnd.in-toto+json`) is an in-toto statement naming DIGEST as its subject, signed over
  DSSE's pre-authentication encoding, annotations `predicateType` and an empty cosign signature.
- The manifest's config is the image config cosign writes (empty platform, the layers' digests as
  diff_ids), so the bytes match what cosign itself would push for the same layers.

Signatures are separate objects: nothing here changes the signed index or manifests, or their digests.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.errors import InputError, Verdict
from xarch.oci.digest import OCI_CONFIG, OCI_MANIFEST, canonical_json, hex_of, sha256_digest
from xarch.oci.verified import BadDescriptor, descriptor_fields, json_object
from xarch.registry.client import RegistryClient, Settings
from xarch.registry.errors import CorruptAnswer, RegistryUsageError
from xarch.registry.mediatypes import DOCKER_MANIFEST
from xarch.registry.push import make_client
from xarch.registry.reference import DOCKER_HUB, Reference, parse_reference
from xarch.sign.keys import SigningKey, VerifyKey

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
SIGNATURE_TYPE = "cosign container image signature"
ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"  # the referrer form's config mediaType
_MAX_MANIFEST = 4 << 20  # the distribution registry's own manifest limit
_MAX_BLOB = 4 << 20  # a payload or envelope larger than this is not one cosign wrote


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """`sha256-<hex>.sig` (or .att): cosign's tag for what signs or attests DIGEST."""
    return f"sha256-{hex_of(digest)}.{suffix}"


def docker_reference(ref: Reference) -> str:
    """The repository as cosign writes it in a payload (go-containerregistry's Context().Name())."""
    host = "index.docker.io" if ref.host == DOCKER_HUB else ref.host
    return f"{host}/{ref.repository}"


def simple_signing_payload(ref: Reference, digest: str) -> bytes:
    """The payload cosign signs for DIGEST in REF's repository, byte for byte as cosign writes it."""
    return json.dumps({
        "critical": {"identity": {"docker-reference": docker_reference(ref)},
                     "image": {"docker-manifest-digest": digest}, "type": SIGNATURE_TYPE},
        "optional": None,
    }, separators=(",", ":")).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _config_for(layer_digests: list[str]) -> bytes:
    # The config cosign's `empty.Image` + appended layers gives: compact JSON in Go's field order.
    return json.dumps({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layer_digests],
        "os": "", "rootfs": {"type": "layers", "diff_ids": layer_digests}, "config": {},
    }, separators=(",", ":")).encode()


# ---- reading what is stored ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoredLayer:
    """One signature or attestation layer of a `.sig`/`.att` manifest."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]

    def as_descriptor(self) -> dict[str, Any]:
        """The layer as an OCI descriptor {mediaType, size (bytes), digest, annotations?} for a manifest."""
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def read_layers(client: RegistryClient, ref: Reference, tag: str) -> list[StoredLayer] | None:
    """The layers of the manifest tagged TAG in REF's repository, or None when there is none.

    Raises CorruptAnswer (exit 4) when what is stored is not an image manifest.
    """
    # _scope: the same pull scope get_manifest asks for; a missing tag is an answer here, not an error.
    client._scope(ref.repository, push=False)
    what = f"GET manifest {ref.repository}:{tag}"
    response = client.request("GET", f"/v2/{ref.repository}/manifests/{tag}",
                              headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}, what=what)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise client._fail(response, what)
    where = f"{ref.host}/{ref.repository}:{tag}"
    if len(response.content) > _MAX_MANIFEST:
        raise CorruptAnswer(f"{where}: manifest larger than {_MAX_MANIFEST} bytes")
    try:
        manifest = json_object(response.content, where)
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            raise BadDescriptor(f"{where}: layers is not a JSON array")
        out = []
        for item in layers:
            media_type, digest, size = descriptor_fields(item, where)
            annotations = item.get("annotations") or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
                raise BadDescriptor(f"{where}: layer {digest}: annotations must map strings to strings")
            out.append(StoredLayer(media_type, digest, size, dict(annotations)))
    except BadDescriptor as error:
        raise CorruptAnswer(str(error)) from None
    return out


def _blob(client: RegistryClient, ref: Reference, layer: StoredLayer) -> bytes:
    if layer.size > _MAX_BLOB:
        raise CorruptAnswer(f"{ref.host}/{ref.repository}@{layer.digest}: a {layer.size}-byte signature "
                            "payload; cosign writes small ones")
    return client.get_blob(ref.repository, layer.digest, layer.size)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def signature_problem(client: RegistryClient, ref: Reference, digest: str, key: VerifyKey,
                      layers: list[StoredLayer] | None = None) -> str | None:
    """None when a signature of DIGEST made with KEY is stored the way cosign stores it; else why not
    (one phrase: no signature, no signature by KEY, a signed payload naming another digest). LAYERS:
    the `.sig` manifest's, when the caller has read them already."""
    tag = signature_tag(digest)
    layers = layers if layers is not None else read_layers(client, ref, tag)
    if layers is None:
        return f"not signed (no {tag})"
    wrong_key = other_digest = 0
    for layer in layers:
        if layer.media_type != SIMPLE_SIGNING:
            continue
        signature = _b64(layer.annotations.get(SIGNATURE_ANNOTATION, ""))
        payload = _blob(client, ref, layer)
        if not signature or not key.verifies(signature, payload):
            wrong_key += 1
            continue
        try:
            critical = json_object(payload, "payload").get("critical")
        except BadDescriptor:
            critical = None
        image = critical.get("image") if isinstance(critical, dict) else None
        if (isinstance(critical, dict) and critical.get("type") == SIGNATURE_TYPE and isinstance(image, dict)
                and image.get("docker-manifest-digest") == digest):
            return None
        other_digest += 1
    if other_digest:
        return f"its signature by {key.path} signs another digest ({tag} was tampered with)"
    if wrong_key:
        return f"no signature by {key.path} ({wrong_key} by other keys, or altered, in {tag})"
    return f"not signed ({tag} holds no cosign signature)"


# ---- writing ------------------------------------------------------------------------------------


@contextmanager
def _client(ref: Reference, settings: Settings | None) -> Iterator[RegistryClient]:
    client = make_client(ref, None, settings)
    try:
        yield client
    finally:
        client.close()


def _put_blob(client: RegistryClient, repository: str, data: bytes) -> str:
    digest = sha256_digest(data)
    if not client.blob_exists(repository, digest):
        with tempfile.TemporaryDirectory(prefix="xarch-sign-") as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(data)
            client.upload_blob(repository, digest, path, len(data))
    return digest


def signature_manifest(layers: list[StoredLayer],
                       subject: dict[str, Any] | None = None) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) of the cosign manifest holding LAYERS, byte for byte as cosign
    writes it: the `.sig`/`.att` tag form, or with SUBJECT (a descriptor: mediaType, size, digest of the
    signed manifest) the OCI 1.1 referrer form of `--registry-referrers-mode=oci-1-1` (config mediaType
    `application/vnd.dev.cosign.artifact.sig.v1+json`, the `subject` field). The referrer form is
    for xarch.registry.referrers.push_attachment, which makes it listable (API or referrers tag)."""
    config = _config_for([layer.digest for layer in layers])
    config_type = OCI_CONFIG if subject is None else ARTIFACT_SIG
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "size": len(config), "digest": sha256_digest(config)},
        "layers": [layer.as_descriptor() for layer in layers],
    }
    if subject is not None:
        manifest["subject"] = {"mediaType": subject["mediaType"], "size": subject["size"],
                               "digest": subject["digest"]}
    return json.dumps(manifest, separators=(",", ":")).encode(), config


def _append_layer(client: RegistryClient, ref: Reference, tag: str, layers: list[StoredLayer],
                  new: StoredLayer, blob: bytes) -> str:
    """Upload BLOB, then the manifest of LAYERS + NEW under TAG (blobs first: the manifest never names a
    missing blob). Returns the new manifest's digest."""
    _put_blob(client, ref.repository, blob)
    manifest, config = signature_manifest([*layers, new])
    _put_blob(client, ref.repository, config)
    return client.put_manifest(ref.repository, tag, manifest, OCI_MANIFEST)


def sign_digest(client: RegistryClient, ref: Reference, digest: str, key: SigningKey) -> bool:
    """Store a cosign signature of DIGEST (in REF's repository) made with KEY; False when one by KEY
    is already there (signing is idempotent: the signature list does not grow on a re-run)."""
    tag = signature_tag(digest)
    stored = read_layers(client, ref, tag)
    if stored is not None and signature_problem(client, ref, digest, key.public(), stored) is None:
        return False
    layers = stored or []
    payload = simple_signing_payload(ref, digest)
    signature = base64.b64encode(key.sign(payload)).decode()
    new = StoredLayer(SIMPLE_SIGNING, sha256_digest(payload), len(payload), {SIGNATURE_ANNOTATION: signature})
    _append_layer(client, ref, tag, layers, new, payload)
    _push_referrer(client, ref, digest, new, payload)
    return True


def _push_referrer(client: RegistryClient, ref: Reference, digest: str, layer: StoredLayer,
                   blob: bytes) -> None:
    """The same signature in cosign's OCI 1.1 form (`--registry-referrers-mode=oci-1-1`): a manifest
    whose `subject` is DIGEST, listed by the referrers API or, where a registry has none, the
    referrers tag (xarch.registry.referrers), so `oras discover` finds it. The `.sig` tag above
    stays what `cosign verify` reads."""
    from xarch.oci.artifact import Attachment
    from xarch.oci.digest import Descriptor
    from xarch.registry.referrers import push_attachment

    data, media_type, _ = client.get_manifest(ref.repository, digest)
    subject = Descriptor(media_type, digest, len(data))
    manifest, config = signature_manifest([layer], subject={"mediaType": media_type, "size": len(data),
                                                           "digest": digest})
    blobs = {sha256_digest(config): config, layer.digest: blob}
    push_attachment(client, ref.repository, Attachment(manifest, ARTIFACT_SIG, subject, blobs))


def attest_digest(client: RegistryClient, ref: Reference, digest: str, statement: bytes,
                  key: SigningKey) -> str:
    """Store STATEMENT (in-toto JSON whose subject names DIGEST) as a cosign attestation signed with KEY.

    Returns the predicateType. Raises InputError (exit 2) when STATEMENT is not an in-toto statement
    about DIGEST: cosign verify-attestation would refuse it.
    """
    try:
        parsed = json_object(statement, "in-toto statement")
    except BadDescriptor as error:
        raise InputError(str(error)) from None
    predicate_type = parsed.get("predicateType")
    subjects = parsed.get("subject")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise InputError("in-toto statement: predicateType is missing or not a string")
    if not isinstance(subjects, list) or not any(
            isinstance(s, dict) and isinstance(s.get("digest"), dict)
            and s["digest"].get("sha256") == hex_of(digest) for s in subjects):
        raise InputError(f"in-toto statement: no subject has the digest {digest} it is attached to")
    envelope = json.dumps({
        "payloadType": IN_TOTO, "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(key.sign(pae(IN_TOTO, statement))).decode()}],
    }, separators=(",", ":")).encode()
    tag = signature_tag(digest, "att")
    layers = read_layers(client, ref, tag) or []
    new = StoredLayer(DSSE_ENVELOPE, sha256_digest(envelope), len(envelope),
                      {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type})
    _append_layer(client, ref, tag, layers, new, envelope)
    return predicate_type


# ---- whole images ---------------------------------------------------------------------------------


@dataclass
class SignedPart:
    """The index or one platform manifest: what it is called in messages, and its digest."""

    name: str  # "index", "linux/amd64", or "image" for a lone manifest
    digest: str
    signatures: int = 0
    attestations: list[str] = field(default_factory=list)  # predicate types


def image_parts(target: str | Reference, settings: Settings | None) -> tuple[Reference, list[SignedPart]]:
    """REF pinned to the digest it names now, and its index (if any) and every platform manifest."""
    from xarch.registry.pull import fetch_image

    ref = parse_reference(target) if isinstance(target, str) else target
    image = fetch_image(ref, settings=settings, with_configs=False)
    if image.is_index:
        parts = [SignedPart("index", image.digest)]
        parts += [SignedPart(m.platform_name, m.digest) for m in image.manifests]
    else:
        parts = [SignedPart("image", image.digest)]
    return Reference(ref.host, ref.repository, ref.tag, image.digest), parts


def sign_image(target: str | Reference, key: SigningKey, settings: Settings | None = None
               ) -> tuple[Reference, list[tuple[SignedPart, bool]]]:
    """Sign the index REF names and every platform manifest in it (cosign sign --recursive).

    Returns REF pinned to the signed index digest, and each part with True when a new signature was
    stored (False: KEY had signed it already). Registry failures are NetworkError (exit 4).
    """
    ref, parts = image_parts(target, settings)
    with _client(ref, settings) as client:
        return ref, [(part, sign_digest(client, ref, part.digest, key)) for part in parts]


def verify_image(target: str | Reference, key: VerifyKey, settings: Settings | None = None
                 ) -> tuple[Reference, list[SignedPart]]:
    """Check that the index REF names and every platform manifest in it carry a cosign signature by KEY.

    Returns REF pinned to the checked digest (compare against that, not the tag: a tag can move
    between the check and the use). Raises Verdict (exit 1), one line naming the first manifest
    that is unsigned, signed by another key, or whose signature names another digest.
    """
    ref, parts = image_parts(target, settings)
    with _client(ref, settings) as client:
        for part in parts:
            problem = signature_problem(client, ref, part.digest, key)
            if problem is not None:
                raise Verdict(f"{ref.host}/{ref.repository}@{part.digest} ({part.name}): {problem}")
    return ref, parts


def attest_image(target: str | Reference, statement: bytes, key: SigningKey,
                 settings: Settings | None = None) -> tuple[Reference, str]:
    """Attach STATEMENT (an in-toto statement whose subject is the index REF names) as a signed
    cosign attestation of that index; returns the pinned REF and the predicateType."""
    ref = parse_reference(target) if isinstance(target, str) else target
    if not ref.digest:
        ref, _ = image_parts(ref, settings)
    assert ref.digest is not None
    with _client(ref, settings) as client:
        return ref, attest_digest(client, ref, ref.digest, statement, key)


def list_signatures(target: str | Reference, settings: Settings | None = None
                    ) -> tuple[Reference, list[SignedPart]]:
    """Each part of REF with how many cosign signatures and which attestations (predicate types) are
    stored for it. Nothing is verified here: that takes a key (verify_image)."""
    ref, parts = image_parts(target, settings)
    with _client(ref, settings) as client:
        for part in parts:
            signatures = read_layers(client, ref, signature_tag(part.digest)) or []
            part.signatures = sum(1 for layer in signatures if layer.media_type == SIMPLE_SIGNING)
            attestations = read_layers(client, ref, signature_tag(part.digest, "att")) or []
            part.attestations = [layer.annotations.get(PREDICATE_TYPE_ANNOTATION, "?")
                                 for layer in attestations if layer.media_type == DSSE_ENVELOPE]
    return ref, parts


def statement_for(ref: Reference, digest: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    """An in-toto v1 statement about DIGEST (in REF's repository): what attest_digest signs.

    RegistryUsageError (exit 2) without a PREDICATE_TYPE.
    """
    if not predicate_type:
        raise RegistryUsageError("an attestation needs a predicate type")
    return canonical_json({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": docker_reference(ref), "digest": {"sha256": hex_of(digest)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
