"""`xarch referrers`: what is attached to an image (SBOMs, provenance, signatures)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from xarch.cli.options import Remote, json_option, remote_options
from xarch.oci.artifact import IN_TOTO
from xarch.registry.imageref import OCI, OCI_ARCHIVE, REGISTRY, ImageRef, parse_image_ref
from xarch.sbom.attach import FORMAT_OF
from xarch.sbom.lookup import ReferrerRow, find_attachments
from xarch.visible import visible


def referrer_rows(path: Path, kind: str) -> list[ReferrerRow]:
    """The attachments of the OCI layout or oci-archive at PATH ([] for a docker-archive)."""
    if kind not in (OCI, OCI_ARCHIVE):
        return []
    from xarch.oci.layout import LayoutReader

    reader = LayoutReader(path)  # index.json alone says whether there is anything to read
    try:
        entries = reader.top_index().get("manifests") or []
    finally:
        reader.close()
    if not any(isinstance(entry, dict) and entry.get("artifactType") for entry in entries):
        return []
    return find_attachments(ImageRef(kind, str(path), path)).rows


def print_referrers(rows: list[ReferrerRow]) -> None:
    """One line per attachment under the inspect table (nothing when there is none)."""
    for row in rows:
        what = FORMAT_OF.get(row.artifact_type) or ("in-toto" if row.artifact_type == IN_TOTO
                                                     else row.artifact_type)
        predicate = f" ({row.predicate_type})" if row.predicate_type else ""
        # The types come from the registry or layout: control characters are escaped (xarch.visible).
        click.echo(visible(f"referrer {row.digest} {what}{predicate} -> {row.subject} {row.subject_digest}"))


def rows_json(rows: list[ReferrerRow]) -> list[dict[str, str]]:
    """ROWS as `referrers --json` prints them: [{subject, subject_digest, digest, artifact_type,
    predicate_type}].
    """
    return [asdict(row) for row in rows]


@click.command("referrers")
@click.argument("image")
@json_option
@remote_options()
def referrers_command(image: str, as_json: bool, remote: Remote) -> None:
    """List what is attached to IMAGE (registry reference, OCI layout or oci-archive): SBOMs,
    provenance, reproduction attestations, each with the manifest or index it is about."""
    import json

    ref = parse_image_ref(image, (OCI, OCI_ARCHIVE, REGISTRY), "IMAGE")
    rows = find_attachments(ref, remote.settings(ref.reference)).rows
    if as_json:
        click.echo(json.dumps(rows_json(rows), indent=2, sort_keys=True))
        return
    if not rows:  # on stderr, so stdout stays empty for scripts, but a person is not left guessing
        click.echo(visible(f"{image}: nothing attached (no SBOM, provenance or attestation)"), err=True)
    print_referrers(rows)
