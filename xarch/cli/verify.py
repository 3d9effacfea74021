"""`xarch verify`: rebuild under varied conditions, or once against a published image."""

from __future__ import annotations

from pathlib import Path

import click

from xarch import platforms as platform_data
from xarch.cli.options import (
    Remote,
    json_option,
    platforms_option,
    recipe_option,
    remote_options,
    select_platforms,
    stdout,
)
from xarch.errors import XarchError
from xarch.progress import Reporter
from xarch.recipe import load, resolve_epoch


@click.command("verify")
@recipe_option
@platforms_option
@click.option("--variations", "variation_list",
              help="Comma-separated, default all: build_path, tz, locale, umask, hostname, user, cpus, "
                   "file_order, mtimes, cache.")
@click.option("--against", metavar="IMAGE",
              help="Instead: rebuild once and compare the whole index with this registry image, OCI layout "
                   "or oci-archive.")
@remote_options()
@click.option("--key", "key_path", type=click.Path(path_type=Path), metavar="KEY",
              help="With --against REF: first check REF's cosign signatures with this key (cosign.pub, or "
                   "cosign.key: its public half), exit 1 when the index or a manifest is unsigned or signed "
                   "otherwise; then compare that digest.")
@click.option("--strategy", type=click.Choice(["auto", "native", "cross", "emulate"]), default=None,
              help="How stage steps run in every build (default: each stage's; with --against: the "
                   "strategy the published image recorded, which this must match).")
@json_option
@click.option("--attest", is_flag=True,
              help="With --against REF (a registry image): when the rebuild matches, attach a reproduction "
                   "attestation to it ($XARCH_BUILDER_ID names this builder).")
def verify_command(recipe_path: Path, platform_list: str | None, variation_list: str | None,
                   against: str | None, remote: Remote, key_path: Path | None, strategy: str | None,
                   as_json: bool, attest: bool = False) -> None:
    """Rebuild the recipe under varied conditions (like reprotest) and compare every digest."""
    from xarch.verify.rebuild import parse_variations, print_report, rebuild_and_compare, verdict_error

    loaded = load(recipe_path)
    platforms = select_platforms(loaded, platform_list)
    if attest and not against:
        raise XarchError("--attest: needs --against REF (the published image the attestation is about)")
    if against:
        from xarch.errors import Verdict
        from xarch.registry.imageref import OCI, OCI_ARCHIVE, REGISTRY, parse_image_ref
        from xarch.verify.against import published_strategies, rebuilt_side
        from xarch.verify.published import print_against, verify_against

        # Parsed before the rebuild: a wrong argument costs no build, and a local file never goes
        # to a registry.
        ref = parse_image_ref(against, (OCI, OCI_ARCHIVE, REGISTRY), "--against")
        if attest and ref.kind != REGISTRY:
            raise XarchError(f"--attest: {ref.label} is not a registry image; attestations are pushed "
                             "as referrers of a published index")
        reporter = Reporter(quiet=as_json)
        settings = remote.settings(ref.reference)
        signer = None  # set when --key is a private key: it also signs what --attest attaches
        if key_path is not None:
            from xarch.sign.actions import checked_signatures

            # Signatures first, before any rebuild; then the digest they cover is what is compared.
            # A private key also signs what --attest attaches (xarch.sign.actions.sign_reproduction).
            ref, signer = checked_signatures(ref, key_path, settings, reporter)
        reporter.info(f"comparing with {ref.label}")
        recorded = published_strategies(ref, settings)
        local = rebuilt_side(loaded, platforms, reporter, strategy, recorded)
        left_out = frozenset(platform_data.get(name).oci for name in loaded.recipe.platforms) \
            - frozenset(p.oci for p in platforms)
        result = verify_against(local, ref, settings=settings, not_rebuilt=left_out)
        print_against(result, as_json, stdout)
        if not result.identical:
            raise Verdict(f"{against} does not match this recipe's rebuild ({len(result.differences)} "
                          "difference(s) above); to see what differs inside: xarch build -o oci:rebuilt && "
                          f"xarch diff oci:rebuilt {against}")
        if attest:
            from xarch.sbom.reproduce import attest as push_attestation

            assert ref.reference is not None
            attached, via = push_attestation(loaded, [p.name for p in platforms], resolve_epoch(loaded)[0],
                                             ref.reference, result, settings)
            reporter.info(f"attached reproduction attestation {attached.digest} to {ref.reference} "
                          f"(referrers {'API' if via == 'api' else 'tag'})")
            if signer is not None:  # --key was the private key: the signed copy cosign reads
                from xarch.sign.actions import sign_reproduction

                sign_reproduction(ref.reference, attached.payload, signer, settings,
                                  reporter)
        return
    if key_path is not None:
        raise XarchError("--key needs --against REF (it checks the published image's signatures)")
    variations = parse_variations(variation_list)
    report = rebuild_and_compare(loaded, platforms, Reporter(quiet=as_json), variations, strategy)
    print_report(report, as_json, stdout)
    error = verdict_error(report)
    if error is not None:
        raise error
