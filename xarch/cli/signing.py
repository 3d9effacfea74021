"""What the signing commands print: signed parts, signatures found, references pinned to digests."""

from __future__ import annotations

import json
from typing import Any

import click

from xarch.registry.client import Settings
from xarch.registry.reference import Reference
from xarch.sign.actions import pinned_text
from xarch.sign.cosign import SignedPart, list_signatures, sign_image
from xarch.sign.keys import SigningKey
from xarch.visible import visible


def parts_json(parts: list[SignedPart], **extra: list[Any]) -> list[dict[str, Any]]:
    """[{name, digest, **EXTRA}] for `--json` output: one object per signed part, each EXTRA list
    ({column: values in PARTS order}) adding one column; ValueError when lengths differ.
    """
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
        click.echo(json.dumps({"reference": pinned_text(ref), "key": str(key.path), "parts": parts_json(
            [p for p, _ in results], signed=[new for _, new in results])}, sort_keys=True))
        return
    if quiet:
        return
    click.echo(f"signed {pinned_text(ref)} with {key.path}", err=True)
    for part, new in results:
        click.echo(f"  {part.name:<12} {part.digest}  {'signed' if new else 'already signed by this key'}",
                   err=True)


def print_signatures(reference: Reference, settings: Settings, as_json: bool) -> None:
    """`xarch inspect REF` for a registry image: each part's signatures and attestations."""
    pinned, parts = list_signatures(reference, settings)
    if as_json:
        click.echo(json.dumps({"reference": pinned_text(pinned), "parts": parts_json(
            parts, signatures=[p.signatures for p in parts], attestations=[p.attestations for p in parts])},
            sort_keys=True))
        return
    click.echo(pinned_text(pinned))
    for part in parts:
        attested = ", ".join(part.attestations) or "none"
        click.echo(visible(f"  {part.name:<12} {part.digest}  signatures: {part.signatures}  "
                           f"attestations: {attested}"))  # predicate types are the registry's text
