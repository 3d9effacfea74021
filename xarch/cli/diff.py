"""`xarch diff`: two images compared down to the file."""

from __future__ import annotations

import sys

import click

from xarch.cli.console import results_console
from xarch.cli.options import Remote, json_option, quiet_option, remote_options
from xarch.diff import diff_paths
from xarch.diff.report import print_diff
from xarch.errors import ExitCode
from xarch.progress import Reporter


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--platform", help="Compare only this platform (e.g. arm64 or linux/arm64).")
@json_option
@remote_options()
@quiet_option
def diff_command(a: str, b: str, platform: str | None, as_json: bool, remote: Remote, quiet: bool) -> None:
    """Compare two images down to the file: exit 0 when identical, 1 when they differ, 2 on bad input,
    4 when a registry fails.

    A and B are each an OCI layout folder, an oci-archive, a docker-archive (or
    oci:DIR, oci-archive:FILE, docker-archive:FILE), or a registry reference
    (docker://REF, or host/name:tag).
    """
    reporter = Reporter(quiet=quiet or as_json)
    result = diff_paths(a, b, platform, remote.settings(*_registry_refs(a, b)), reporter.info)
    console = results_console(soft_wrap=not sys.stdout.isatty(), width=None if sys.stdout.isatty() else 200)
    print_diff(result, as_json, console)
    if not result.identical:
        sys.exit(ExitCode.VERDICT)


def _registry_refs(*texts: str) -> list[str]:
    """The registry references among TEXTS (image arguments), as xarch.registry.imageref reads them."""
    from xarch.registry.imageref import REGISTRY, parse_image_ref

    refs = [parse_image_ref(text) for text in texts]
    return [ref.reference for ref in refs if ref.kind == REGISTRY and ref.reference is not None]
