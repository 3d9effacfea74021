"""`xarch verify --against REF --attest`: after a rebuild matched REF, push a reproduction attestation.

The attestation is an in-toto statement (xarch.sbom.provenance.reproduction_statement) attached to
the published index (or to the lone manifest REF names) as a referrer, so anyone can count the
independent rebuilds of a published image (`xarch inspect`-style listing, or the referrers API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xarch.oci.artifact import CREATED, IN_TOTO, PREDICATE_ANNOTATION, Attachment, attachment
from xarch.oci.digest import Descriptor
from xarch.oci.image import rfc3339
from xarch.sbom.provenance import REPRODUCTION, reproduction_statement

if TYPE_CHECKING:
    from xarch.recipe import LoadedRecipe
    from xarch.registry.client import Settings
    from xarch.verify.published import AgainstReport


def matched_digests(report: AgainstReport) -> dict[str, str]:
    """platform ("linux/arm64", "index") → the published digest the rebuild matched byte for byte."""
    from xarch.verify.published import SAME

    return {row.platform: row.published for row in report.rows if row.status == SAME and row.published}


def reproduction_attachment(loaded: LoadedRecipe, platforms: list[str], epoch: int, reference: str,
                            subject: Descriptor, report: AgainstReport) -> Attachment:
    """The attestation as an artifact about SUBJECT (the published index). Its bytes depend on the
    recipe, lock, epoch, builder and matched digests only (no time of day)."""
    from xarch.sbom.attach import build_facts

    facts = build_facts(loaded, platforms, epoch)
    statement = reproduction_statement(reference, subject.digest, facts, matched_digests(report))
    return attachment(IN_TOTO, statement, subject,
                      annotations={CREATED: rfc3339(epoch), PREDICATE_ANNOTATION: REPRODUCTION,
                                   "dev.xarch.builder": facts.builder})


def attest(loaded: LoadedRecipe, platforms: list[str], epoch: int, reference: str, report: AgainstReport,
           settings: Settings) -> tuple[Attachment, str]:
    """Push the reproduction attestation of REFERENCE (which REPORT found identical); returns it and
    how it was made listable ("api" or "tag", xarch.registry.referrers.push_attachment)."""
    from xarch.registry.push import make_client
    from xarch.registry.reference import parse_reference
    from xarch.registry.referrers import push_attachment
    from xarch.verify.published import INDEX

    assert report.identical
    ref = parse_reference(reference)
    top = next((row.published for row in report.rows if row.platform == INDEX and row.published), None)
    top = top or next(row.published for row in report.rows if row.published)
    client = make_client(ref, None, settings)
    try:
        data, media_type, digest = client.get_manifest(ref.repository, top)
        subject = Descriptor(media_type, digest, len(data))
        attached = reproduction_attachment(loaded, platforms, epoch, reference, subject, report)
        return attached, push_attachment(client, ref.repository, attached)
    finally:
        client.close()
