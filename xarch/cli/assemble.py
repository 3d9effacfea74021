"""`xarch assemble`: one index in a registry from per-platform images pushed by separate jobs."""

from __future__ import annotations

from pathlib import Path

import click

from xarch.cli.options import Remote, json_option, parse_annotations, quiet_option, remote_options
from xarch.registry.assemble import assemble
from xarch.registry.progress import progress_for
from xarch.registry.result import print_result


@click.command("assemble")
@click.argument("ref")
@click.option("--from", "from_refs", multiple=True, required=True, metavar="REF@sha256:…",
              help="A per-platform image manifest in the same registry (repeatable; index order).")
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="Index annotation (repeatable); the recipe's `annotations.index`, for equal bytes.")
@click.option("-f", "--file", "recipe_path", type=click.Path(path_type=Path),
              help="Take the index annotations from this recipe (as a local build does).")
@remote_options()
@json_option
@quiet_option
def assemble_command(ref: str, from_refs: tuple[str, ...], annotations: tuple[str, ...],
                     recipe_path: Path | None, remote: Remote, as_json: bool, quiet: bool) -> None:
    """Build an OCI index from per-platform manifests already in a registry and push it as REF."""
    settings = remote.settings(ref, *from_refs)
    index_annotations = parse_annotations(annotations)
    if recipe_path is not None:
        from xarch.recipe import load

        index_annotations = {**load(recipe_path).recipe.annotations.index, **(index_annotations or {})}
    result = assemble(ref, from_refs, settings=settings,
                      annotations=index_annotations or None,
                      progress=progress_for(quiet=quiet or as_json))
    print_result(result, as_json, "assembled")
