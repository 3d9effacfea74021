"""Click commands `xarch push` and `xarch assemble` (registered in xarch.cli by the lead)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from xarch.registry.assemble import assemble
from xarch.registry.auth import Credentials
from xarch.registry.client import DEFAULT_CHUNK_SIZE, Settings
from xarch.registry.errors import RegistryUsageError
from xarch.registry.progress import progress_for
from xarch.registry.push import PushResult, push_layout
from xarch.smallfile import checked_ca_cert
from xarch.units import human_size

F = TypeVar("F", bound=Callable[..., Any])


def connection_options(command: F) -> F:
    """--insecure, --ca-cert, --username, --password-stdin, --json: shared by every registry command."""
    for option in reversed([
        click.option("--insecure", is_flag=True,
                     help="Allow plain HTTP and unverified TLS (localhost gets plain HTTP without it)."),
        click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), callback=checked_ca_cert,
                     help="PEM bundle of the CA that signed the registry's certificate."),
        click.option("--username", "-u", help="Registry user (default: ~/.docker/config.json)."),
        click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No per-blob progress."),
    ]):
        command = option(command)
    return command


def credentials_from_options(username: str | None, password_stdin: bool) -> Credentials | None:
    """Credentials typed by the user, or None to use the Docker config's."""
    if password_stdin:
        if not username:
            raise RegistryUsageError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise RegistryUsageError("--password-stdin: standard input held no password")
        return Credentials(username=username, password=password)
    if username:
        raise RegistryUsageError(
            "--username needs --password-stdin (passwords are never taken on the command line)")
    return None


def parse_annotations(pairs: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RegistryUsageError(f"--annotation {pair!r}: expected KEY=VALUE")
        result[key] = value
    return result


def report(result: PushResult, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
        return
    stats = result.stats
    click.echo(f"{verb} {result.reference}")
    for name, digest in result.manifests.items():
        click.echo(f"  {name:<10} {digest}")
    click.echo(f"  blobs: {stats.blobs_sent} sent ({human_size(stats.bytes_sent)}), "
               f"{stats.blobs_skipped} already there ({human_size(stats.bytes_skipped)}), "
               f"{stats.blobs_mounted} mounted ({human_size(stats.bytes_mounted)})")
    if result.referrers:
        how = "the referrers API" if set(result.referrers.values()) == {"api"} else "the referrers tag"
        click.echo(f"  referrers: {len(result.referrers)} attached (SBOMs, provenance) through {how}")


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
@connection_options
def push_command(layout: str, ref: str, fmt: str, mount_from: tuple[str, ...], chunk_size: int, jobs: int,
                 insecure: bool, ca_cert: str | None, username: str | None, password_stdin: bool,
                 as_json: bool, quiet: bool) -> None:
    """Push LAYOUT (OCI layout folder or oci-archive, or oci:DIR, oci-archive:FILE) to REF (host/repo[:tag]).

    Blobs first (skipped when present, mounted with --mount-from), then each platform's
    manifest by digest, then the index, then the tag.
    """
    from xarch.registry.imageref import OCI, OCI_ARCHIVE, parse_image_ref

    source = parse_image_ref(layout, (OCI, OCI_ARCHIVE), "push")
    assert source.path is not None
    if not (quiet or as_json):
        click.echo(f"pushing {source.label}", err=True)  # which kind LAYOUT was taken for
    credentials = credentials_from_options(username, password_stdin)
    settings = Settings(insecure=insecure, ca_cert=ca_cert, chunk_size=chunk_size, jobs=jobs)
    result = push_layout(source.path, ref, fmt=fmt, credentials=credentials, settings=settings,
                         mount_from=mount_from, progress=progress_for(quiet=quiet or as_json))
    report(result, as_json, "pushed")


@click.command("assemble")
@click.argument("ref")
@click.option("--from", "from_refs", multiple=True, required=True, metavar="REF@sha256:…",
              help="A per-platform image manifest in the same registry (repeatable; index order).")
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="Index annotation (repeatable); the recipe's `annotations.index`, for equal bytes.")
@click.option("-f", "--file", "recipe_path", type=click.Path(path_type=Path),
              help="Take the index annotations from this recipe (as a local build does).")
@connection_options
def assemble_command(ref: str, from_refs: tuple[str, ...], annotations: tuple[str, ...],
                     recipe_path: Path | None, insecure: bool, ca_cert: str | None, username: str | None,
                     password_stdin: bool, as_json: bool, quiet: bool) -> None:
    """Build an OCI index from per-platform manifests already in a registry and push it as REF."""
    credentials = credentials_from_options(username, password_stdin)
    settings = Settings(insecure=insecure, ca_cert=ca_cert)
    index_annotations = parse_annotations(annotations)
    if recipe_path is not None:
        from xarch.recipe import load

        index_annotations = {**load(recipe_path).recipe.annotations.index, **(index_annotations or {})}
    result = assemble(ref, from_refs, credentials=credentials, settings=settings,
                      annotations=index_annotations or None,
                      progress=progress_for(quiet=quiet or as_json))
    report(result, as_json, "assembled")
