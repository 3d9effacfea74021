"""`xarch push`: an OCI layout or archive to a registry, as an index or Docker manifest list."""

from __future__ import annotations

import click

from xarch.cli.options import Remote, json_option, quiet_option, remote_options
from xarch.registry.client import DEFAULT_CHUNK_SIZE
from xarch.registry.progress import progress_for
from xarch.registry.push import push_layout, push_target
from xarch.registry.result import print_result
from xarch.visible import visible


@click.command("push")
@click.argument("layout")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["oci", "docker"]), default="oci", show_default=True,
              help="docker: Docker v2 manifest-list media types (changes manifest digests).")
@click.option("--mount-from", multiple=True, metavar="REPO",
              help="Repository on the same registry to mount blobs from (repeatable).")
@click.option("--chunk-size", type=click.IntRange(min=1 << 20), default=DEFAULT_CHUNK_SIZE, show_default=True,
              help="Bytes per PATCH; larger blobs are uploaded in chunks, smaller in one PUT.")
@click.option("--jobs", "-j", type=click.IntRange(min=1, max=16), default=3, show_default=True,
              help="Blobs uploaded at once.")
@remote_options()
@json_option
@quiet_option
def push_command(layout: str, ref: str, fmt: str, mount_from: tuple[str, ...], chunk_size: int, jobs: int,
                 remote: Remote, as_json: bool, quiet: bool) -> None:
    """Push LAYOUT (OCI layout folder or oci-archive, or oci:DIR, oci-archive:FILE) to REF (host/repo[:tag]).

    Blobs first (skipped when present, mounted with --mount-from), then each platform's
    manifest by digest, then the index, then the tag.
    """
    from xarch.registry.imageref import OCI, OCI_ARCHIVE, parse_image_ref

    source = parse_image_ref(layout, (OCI, OCI_ARCHIVE), "push")
    assert source.path is not None
    target = push_target(ref, fmt)  # a bad REF is one line before anything is said or read
    settings = remote.settings(str(target), chunk_size=chunk_size, jobs=jobs)
    if not (quiet or as_json):
        click.echo(visible(f"pushing {source.label}"), err=True)  # which kind LAYOUT was taken for
    result = push_layout(source.path, target, fmt=fmt, settings=settings,
                         mount_from=mount_from, progress=progress_for(quiet=quiet or as_json))
    from xarch.cli.pushreplay import finish

    finish(result)  # a push record, when this push may be replayed (xarch.cli.pushreplay)
    print_result(result, as_json, "pushed")
