"""`xarch sign`: cosign-compatible signatures for a pushed index and its manifests."""

from __future__ import annotations

from pathlib import Path

import click

from xarch.cli.options import Remote, json_option, key_option, password_option, remote_options
from xarch.cli.signing import sign_pushed
from xarch.sign.actions import registry_reference
from xarch.sign.keys import signing_key_from


@click.command("sign")
@click.argument("ref")
@key_option
@password_option
@remote_options(password=False)
@json_option
def sign_command(ref: str, key_path: Path, password_stdin: bool, remote: Remote,
                 as_json: bool) -> None:
    """Sign the pushed image REF, its index and every platform manifest, as `cosign sign --recursive
    --key KEY` does (tags sha256-<hex>.sig; `cosign verify --key` accepts them)."""
    reference = registry_reference(ref, "sign")
    key = signing_key_from(key_path, password_stdin)
    sign_pushed(reference, key, remote.settings(ref), as_json=as_json)
