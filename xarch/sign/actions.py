"""Signing and checking as the commands do it: keys opened, references pinned, results reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xarch.registry.client import Settings
from xarch.registry.reference import Reference
from xarch.sign.cosign import verify_image
from xarch.sign.keys import KeyFileError, SigningKey, VerifyKey, load_verify_key, signing_key_from


def registry_reference(text: str, role: str) -> Reference:
    """TEXT as a registry reference (a local layout has no signatures); exit 2 naming it if not."""
    from xarch.registry.imageref import REGISTRY, parse_image_ref
    from xarch.registry.reference import parse_reference

    ref = parse_image_ref(text, (REGISTRY,), role)
    assert ref.reference is not None
    return parse_reference(ref.reference)





def key_for_checking(key_path: Path) -> tuple[VerifyKey, SigningKey | None]:
    """`verify --key`: a public key (cosign.pub), or a cosign private key, whose public half checks
    and which can then also sign the reproduction attestation (sign_reproduction). A private key's
    password comes from $COSIGN_PASSWORD (or a terminal prompt), read before any rebuild.

    KeyFileError (exit 2) names the file when it is no key (or its password is wrong).
    """
    from xarch.smallfile import SmallFileError, read_small

    try:
        head = read_small(key_path, 64 * 1024)  # a key file's limit (xarch.sign.keys); a FIFO blocked here
    except SmallFileError as error:
        raise KeyFileError(f"key {key_path}: {error}; not a key file") from None
    if b"PRIVATE KEY-----" in head:
        signer = signing_key_from(key_path, password_stdin=False)
        return signer.public(), signer
    return load_verify_key(key_path), None


def checked_signatures(ref: Any, key_path: Path, settings: Settings,
                       reporter: Any) -> tuple[Any, SigningKey | None]:
    """`xarch verify --against REF --key KEY`: check REF's signatures (Verdict, exit 1, naming the
    manifest) and return REF pinned to the digest they cover, so the comparison reads those bytes and
    not whatever the tag names a moment later, and the signing key when KEY is a private key.
    REF is an xarch.registry.imageref.ImageRef; a local layout has no signatures (InputError, exit 2)."""
    from xarch.errors import InputError
    from xarch.registry.imageref import REGISTRY, ImageRef
    from xarch.registry.reference import parse_reference

    if ref.kind != REGISTRY or ref.reference is None:
        raise InputError(f"--key: {ref.label} has no signatures; cosign signatures live in a registry")
    key, signer = key_for_checking(key_path)
    pinned, parts = verify_image(parse_reference(ref.reference), key, settings)
    reporter.info(f"signatures: {len(parts)} manifest(s) of {pinned_text(pinned)} signed by {key_path}")
    return ImageRef(REGISTRY, ref.text, reference=str(pinned)), signer


def sign_reproduction(reference: str, statement: bytes, signer: SigningKey, settings: Settings,
                      reporter: Any) -> None:
    """`verify --against REF --attest --key cosign.key`: store the reproduction attestation's in-toto
    STATEMENT (its subject the index REFERENCE names) as a cosign attestation signed with SIGNER, so
    `cosign verify-attestation --key cosign.pub --type <its predicateType>` accepts it. The unsigned
    referrer the --attest flag pushes is left as it is: this is the signed copy cosign reads."""
    from xarch.sign.cosign import attest_image

    pinned, predicate_type = attest_image(reference, statement, signer, settings)
    reporter.info(f"signed {predicate_type} attestation of {pinned_text(pinned)} with {signer.path}")


def pinned_text(ref: Reference) -> str:
    """`host/repository@sha256:<hex>`: REF pinned to its digest, as signing messages name an image."""
    return f"{ref.host}/{ref.repository}@{ref.digest}"
