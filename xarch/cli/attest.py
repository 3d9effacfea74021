"""`xarch attest`: sign an in-toto statement and attach it to a registry image."""

from __future__ import annotations

import json
from pathlib import Path

import click

from xarch.cli.options import Remote, json_option, key_option, password_option, remote_options
from xarch.cli.signing import pinned_text
from xarch.sign.actions import registry_reference
from xarch.sign.keys import signing_key_from

_MAX_STATEMENT = 4 << 20  # as the largest blob read back (xarch.sign.cosign)


@click.command("attest")
@click.argument("ref")
@key_option
@click.option("--statement", "statement_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An in-toto statement (JSON) whose subject is the digest REF names.")
@password_option
@remote_options(password=False)
@json_option
def attest_command(ref: str, key_path: Path, statement_path: Path, password_stdin: bool,
                   remote: Remote, as_json: bool) -> None:
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
                                              remote.settings(ref))
    except InputError as error:
        raise InputError(f"--statement {statement_path}: {error}") from None
    if as_json:
        click.echo(json.dumps({"reference": pinned_text(pinned), "key": str(key_path),
                               "predicateType": predicate_type}, sort_keys=True))
        return
    click.echo(f"attested {pinned_text(pinned)} ({predicate_type}) with {key_path}")
