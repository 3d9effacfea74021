"""`xarch inspect`: the images of a layout or archive, what is inside one, a registry image's signatures."""

from __future__ import annotations

import json

import click

from xarch.cli.console import terminal
from xarch.cli.options import Remote, json_option, remote_options, stdout
from xarch.errors import XarchError
from xarch.summary import print_summary, summarize_path


@click.command("inspect")
@click.argument("target")
@json_option
@remote_options()
@click.option("--platform", help="The image of this platform (arm64), with --config, --files, --packages.")
@click.option("--config", "config_view", is_flag=True, help="Print the image config.")
@click.option("--files", "files_view", is_flag=True, help="List every file of the image (layers applied).")
@click.option("--packages", "packages_view", is_flag=True, help="List the Debian packages the image holds.")
def inspect_command(target: str, as_json: bool, remote: Remote, platform: str | None,
                    config_view: bool, files_view: bool, packages_view: bool) -> None:
    """Show the images of an OCI layout, oci-archive or docker-archive (or oci:DIR, oci-archive:FILE,
    docker-archive:FILE); with --config, --files or --packages, inside one of them; of a registry
    image, the cosign signatures and attestations of its index and every manifest."""
    from xarch.registry.imageref import KINDS, REGISTRY, parse_image_ref

    # Separate flags, so that two views given together are refused rather than the last one winning.
    views = [name for name, on in (("config", config_view), ("files", files_view),
                                   ("packages", packages_view)) if on]
    if len(views) > 1:
        raise XarchError(f"inspect: --{' and --'.join(views)} are separate views: give one")
    view = views[0] if views else None
    ref = parse_image_ref(target, KINDS, "inspect")
    if ref.kind == REGISTRY and (view or platform):
        raise XarchError(f"inspect {target}: --{view or 'platform'} reads a local layout or archive; "
                         "for a registry image inspect lists its signatures (`xarch diff` reads its files)")
    if ref.kind == REGISTRY:
        from xarch.cli.signing import print_signatures
        from xarch.registry.reference import parse_reference

        assert ref.reference is not None
        print_signatures(parse_reference(ref.reference), remote.settings(ref.reference), as_json)
        return
    assert ref.path is not None
    if view:
        from xarch.diff.views import show

        show(target, platform, view, as_json, stdout)
        return
    if platform:
        raise XarchError("inspect --platform: give --config, --files or --packages as well")
    summary = summarize_path(ref.path, ref.kind, target)
    from xarch.cli.referrers import print_referrers, referrer_rows, rows_json

    referrers = referrer_rows(ref.path, ref.kind)
    if as_json and referrers:
        print(json.dumps({**summary.to_json(), "referrers": rows_json(referrers)}, indent=2, sort_keys=True))
        return
    print_summary(summary, as_json, terminal())
    print_referrers(referrers)
