"""`xarch sign REF --key KEY` and `xarch verify-signature REF --key PUB` (docs/signing.md).

Registry credentials come from the Docker config (`docker login`), as for `xarch build --push`;
`--password-stdin` here is the key's password, not the registry's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from xarch.registry.client import Settings
from xarch.registry.reference import Reference
from xarch.sign.cosign import SignedPart, list_signatures, sign_image, verify_image
from xarch.sign.keys import KeyFileError, SigningKey, VerifyKey, load_verify_key, signing_key_from
from xarch.smallfile import checked_ca_cert
from xarch.visible import visible

key_option = click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
                          help="cosign's key file (cosign generate-key-pair).")
password_option = click.option("--password-stdin", is_flag=True,
                               help="Read the key's password from stdin (default: $COSIGN_PASSWORD).")
insecure_option = click.option("--insecure", is_flag=True, help="Plain HTTP / no TLS verification.")
ca_cert_option = click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
                              callback=checked_ca_cert,
                              help="PEM bundle of the CA that signed the registry's certificate.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def registry_reference(text: str, role: str) -> Reference:
    """TEXT as a registry reference (a local layout has no signatures); exit 2 naming it if not."""
    from xarch.registry.imageref import REGISTRY, parse_image_ref
    from xarch.registry.reference import parse_reference

    ref = parse_image_ref(text, (REGISTRY,), role)
    assert ref.reference is not None
    return parse_reference(ref.reference)


def _pinned(ref: Reference) -> str:
    return f"{ref.host}/{ref.repository}@{ref.digest}"


def _parts_json(parts: list[SignedPart], **extra: list[Any]) -> list[dict[str, Any]]:
    rows = [{"name": p.name, "digest": p.digest} for p in parts]
    for name, values in extra.items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    return rows


def sign_pushed(reference: str | Reference, key: SigningKey, settings: Settings, quiet: bool = False,
                as_json: bool = False) -> None:
    """Sign the pushed image REFERENCE (index and every manifest) and say what was signed."""
    ref, results = sign_image(reference, key, settings)
    if as_json:
        click.echo(json.dumps({"reference": _pinned(ref), "key": str(key.path), "parts": _parts_json(
            [p for p, _ in results], signed=[new for _, new in results])}, sort_keys=True))
        return
    if quiet:
        return
    click.echo(f"signed {_pinned(ref)} with {key.path}", err=True)
    for part, new in results:
        click.echo(f"  {part.name:<12} {part.digest}  {'signed' if new else 'already signed by this key'}",
                   err=True)


@click.command("sign")
@click.argument("ref")
@key_option
@password_option
@insecure_option
@ca_cert_option
@json_option
def sign_command(ref: str, key_path: Path, password_stdin: bool, insecure: bool, ca_cert: str | None,
                 as_json: bool) -> None:
    """Sign the pushed image REF, its index and every platform manifest, as `cosign sign --recursive
    --key KEY` does (tags sha256-<hex>.sig; `cosign verify --key` accepts them)."""
    reference = registry_reference(ref, "sign")
    key = signing_key_from(key_path, password_stdin)
    sign_pushed(reference, key, Settings(insecure=insecure, ca_cert=ca_cert), as_json=as_json)


@click.command("verify-signature")
@click.argument("ref")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="The public key (cosign.pub).")
@insecure_option
@ca_cert_option
@json_option
def verify_signature_command(ref: str, key_path: Path, insecure: bool, ca_cert: str | None,
                             as_json: bool) -> None:
    """Check that REF's index and every platform manifest carry a cosign signature by KEY (exit 1,
    one line naming the manifest, when one does not). No rebuild: `xarch verify --against REF --key`
    does both."""
    reference = registry_reference(ref, "verify-signature")
    key = load_verify_key(key_path)
    pinned, parts = verify_image(reference, key, Settings(insecure=insecure, ca_cert=ca_cert))
    if as_json:
        click.echo(json.dumps({"reference": _pinned(pinned), "key": str(key_path), "verified": True,
                               "parts": _parts_json(parts)}, sort_keys=True))
        return
    click.echo(f"verified {_pinned(pinned)}: {len(parts)} manifest(s) signed by {key_path}")


def print_signatures(reference: Reference, settings: Settings, as_json: bool) -> None:
    """`xarch inspect REF` for a registry image: each part's signatures and attestations."""
    pinned, parts = list_signatures(reference, settings)
    if as_json:
        click.echo(json.dumps({"reference": _pinned(pinned), "parts": _parts_json(
            parts, signatures=[p.signatures for p in parts], attestations=[p.attestations for p in parts])},
            sort_keys=True))
        return
    click.echo(_pinned(pinned))
    for part in parts:
        attested = ", ".join(part.attestations) or "none"
        click.echo(visible(f"  {part.name:<12} {part.digest}  signatures: {part.signatures}  "
                           f"attestations: {attested}"))  # predicate types are the registry's text


def key_for_checking(key_path: Path) -> tuple[VerifyKey, SigningKey | None]:
    """`verify --key`: a public key (cosign.pub), or a cosign private key, whose public half checks
    and which can then also sign the reproduction attestation (sign_reproduction). A private key's
    password comes from $COSIGN_PASSWORD (or a terminal prompt), read before any rebuild."""
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
    reporter.info(f"signatures: {len(parts)} manifest(s) of {_pinned(pinned)} signed by {key_path}")
    return ImageRef(REGISTRY, ref.text, reference=str(pinned)), signer


def sign_reproduction(reference: str, statement: bytes, signer: SigningKey, settings: Settings,
                      reporter: Any) -> None:
    """`verify --against REF --attest --key cosign.key`: store the reproduction attestation's in-toto
    STATEMENT (its subject the index REFERENCE names) as a cosign attestation signed with SIGNER, so
    `cosign verify-attestation --key cosign.pub --type <its predicateType>` accepts it. The unsigned
    referrer the --attest flag pushes is left as it is: this is the signed copy cosign reads."""
    from xarch.sign.cosign import attest_image

    pinned, predicate_type = attest_image(reference, statement, signer, settings)
    reporter.info(f"signed {predicate_type} attestation of {_pinned(pinned)} with {signer.path}")


_MAX_STATEMENT = 4 << 20  # as the largest blob read back (xarch.sign.cosign)


@click.command("attest")
@click.argument("ref")
@key_option
@click.option("--statement", "statement_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An in-toto statement (JSON) whose subject is the digest REF names.")
@password_option
@insecure_option
@ca_cert_option
@json_option
def attest_command(ref: str, key_path: Path, statement_path: Path, password_stdin: bool, insecure: bool,
                   ca_cert: str | None, as_json: bool) -> None:
    """Attach the in-toto STATEMENT to the image REF as a signed attestation, as `cosign attest --key KEY`
    does (DSSE envelope, tag sha256-<hex>.att; `cosign verify-attestation --key` accepts it)."""
    from xarch.errors import InputError
    from xarch.sign.cosign import attest_image

    reference = registry_reference(ref, "attest")
    from xarch.smallfile import SmallFileError, read_small

    try:
        statement = read_small(statement_path, _MAX_STATEMENT)
    except SmallFileError as error:
        raise InputError(f"--statement {statement_path}: {error}") from None
    key = signing_key_from(key_path, password_stdin)
    try:
        pinned, predicate_type = attest_image(reference, statement, key,
                                              Settings(insecure=insecure, ca_cert=ca_cert))
    except InputError as error:
        raise InputError(f"--statement {statement_path}: {error}") from None
    if as_json:
        click.echo(json.dumps({"reference": _pinned(pinned), "key": str(key_path),
                               "predicateType": predicate_type}, sort_keys=True))
        return
    click.echo(f"attested {_pinned(pinned)} ({predicate_type}) with {key_path}")
