"""`xarch verify-signature`: check a registry image's cosign signatures with a key."""

from __future__ import annotations

import json
from pathlib import Path

import click

from xarch.cli.options import ca_cert_option, insecure_option, json_option
from xarch.cli.signing import parts_json, pinned_text
from xarch.registry.client import Settings
from xarch.sign.actions import registry_reference
from xarch.sign.cosign import verify_image
from xarch.sign.keys import load_verify_key


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
        click.echo(json.dumps({"reference": pinned_text(pinned), "key": str(key_path), "verified": True,
                               "parts": parts_json(parts)}, sort_keys=True))
        return
    click.echo(f"verified {pinned_text(pinned)}: {len(parts)} manifest(s) signed by {key_path}")
