"""`xarch sign`: cosign-compatible signatures for a pushed index and its manifests."""

from __future__ import annotations

from pathlib import Path

import click

from xarch.cli.options import ca_cert_option, insecure_option, json_option, key_option, password_option
from xarch.cli.signing import sign_pushed
from xarch.registry.client import Settings
from xarch.sign.actions import registry_reference
from xarch.sign.keys import signing_key_from


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
