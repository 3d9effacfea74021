"""`xarch verify-signature`: check a registry image's cosign signatures with a key."""

from __future__ import annotations

import json
from pathlib import Path

import click

from xarch.cli.options import Remote, json_option, remote_options
from xarch.cli.signing import parts_json, pinned_text
from xarch.sign.actions import registry_reference
from xarch.sign.cosign import verify_image
from xarch.sign.keys import load_verify_key


@click.command("verify-signature")
@click.argument("ref")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="The public key (cosign.pub).")
@remote_options()
@json_option
def verify_signature_command(ref: str, key_path: Path, remote: Remote,
                             as_json: bool) -> None:
    """Check that REF's index and every platform manifest carry a cosign signature by KEY (exit 1,
    one line naming the manifest, when one does not). No rebuild: `xarch verify --against REF --key`
    does both."""
    reference = registry_reference(ref, "verify-signature")
    key = load_verify_key(key_path)
    pinned, parts = verify_image(reference, key, remote.settings(ref))
    if as_json:
        click.echo(json.dumps({"reference": pinned_text(pinned), "key": str(key_path), "verified": True,
                               "parts": parts_json(parts)}, sort_keys=True))
        return
    click.echo(f"verified {pinned_text(pinned)}: {len(parts)} manifest(s) signed by {key_path}")
