"""`xarch build`: the recipe for every platform into one OCI image index, then its outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xarch.cli.console import terminal
from xarch.cli.options import (
    Remote,
    choose_docker_platform,
    json_option,
    platforms_option,
    quiet_option,
    recipe_option,
    remote_options,
    select_platforms,
)
from xarch.errors import XarchError
from xarch.run.options import DEFAULT_LOG_LINES

if TYPE_CHECKING:
    from xarch.oci.layout import Artifact

# The build's modules are imported inside build_command, in the order its work needs them: the
# command table (and `--help`) pays for none, and a cached build for none it does not run
# (tests/unit/test_startup_imports.py).


@click.command("build")
@recipe_option
@platforms_option
@click.option("-o", "--output", "outputs", multiple=True,
              help="oci:DIR (default dist/<name>), oci-archive:FILE or docker-archive:FILE; repeatable.")
@click.option("--docker-platform", help="The platform a docker-archive holds (default: the host's).")
@json_option
@click.option("--strategy", type=click.Choice(["auto", "native", "cross", "emulate"]),
              help="How stage steps run for every platform (default: each stage's own, auto).")
@click.option("--locked", is_flag=True, help="Fail if xarch.lock is missing or does not match the recipe.")
@click.option("--no-cache", is_flag=True, help="Rebuild every image even when no input changed.")
@click.option("--push", "push_refs", metavar="REF", multiple=True,
              help="Also push the index to REF (host/repo:tag); repeatable.")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="The name a docker-archive and --load carry (default: the recipe's name:tag); repeatable.")
@remote_options(password=False)
@click.option("--sign-key", type=click.Path(path_type=Path), metavar="KEY",
              help="With --push: sign the index and every manifest with this cosign key (docs/signing.md).")
@click.option("--password-stdin", is_flag=True, help="With --sign-key: its password from stdin "
              "(default: $COSIGN_PASSWORD).")
@click.option("--load", "load_tag", is_flag=False, flag_value="", default=None, metavar="[TAG]",
              help="Also load the host's (or --docker-platform's) image into Docker, tagged.")
@click.option("-v", "--verbose", is_flag=True, help="Say what each part of the build does.")
@click.option("--show-scripts", is_flag=True,
              help="List the maintainer scripts not run and what xarch wrote in their place.")
@quiet_option
@click.option("--sbom", "sbom_formats", is_flag=False, flag_value="spdx,cyclonedx", default=None,
              metavar="[spdx,cyclonedx]", help="Attach each platform's SBOM (default: both formats).")
@click.option("--provenance", is_flag=True, help="Attach each platform's SLSA v1 provenance.")
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE",
              help="Set a build argument the recipe declares in args: (repeatable).")
@click.option("--secret", "secrets", multiple=True, metavar="id=NAME,src=FILE|env=VAR",
              help="A secret for steps listing it: read-only at /run/secrets/NAME, in no output or "
                   "cache key (repeatable).")
@click.option("--log-lines", type=click.IntRange(min=1), default=DEFAULT_LOG_LINES, show_default=True,
              help="How many of a failed step's last output lines to print.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="An image config label, over the recipe's config.labels (repeatable).")
def build_command(recipe_path: Path, platform_list: str | None, outputs: tuple[str, ...],
                  docker_platform: str | None, as_json: bool, strategy: str | None, locked: bool,
                  no_cache: bool, push_refs: tuple[str, ...], tags: tuple[str, ...], remote: Remote,
                  sign_key: Path | None, password_stdin: bool, load_tag: str | None, verbose: bool,
                  show_scripts: bool, quiet: bool, sbom_formats: str | None, provenance: bool,
                  build_args: tuple[str, ...], secrets: tuple[str, ...], log_lines: int,
                  labels: tuple[str, ...]) -> None:
    """Build the recipe for every platform into one OCI image index."""
    from xarch.build.contents import check_sources
    from xarch.build.outputs import OutputSpec, check_outputs, image_for, write_output
    from xarch.build.packages import ensure_lock
    from xarch.build.pipeline import BuildInputs, build
    from xarch.oci.store import Store
    from xarch.progress import Reporter
    from xarch.recipe import load, resolve_epoch
    from xarch.run.options import parse_labels, resolve
    from xarch.summary import print_summary, summarize_artifact

    reporter = Reporter(quiet=quiet or as_json, verbose=verbose, show_scripts=show_scripts)
    signer = None
    if sign_key is not None:  # the key is opened before the build: a wrong password costs no build
        if not push_refs:
            raise XarchError("--sign-key needs --push REF (signatures are stored in the registry)")
        from xarch.sign.keys import signing_key_from

        signer = signing_key_from(sign_key, password_stdin)
    elif password_stdin:  # else a password meant for a registry login would be read by no one
        raise XarchError("--password-stdin is --sign-key's password and needs --sign-key (build takes "
                         "registry credentials from `docker login`)")
    loaded = load(recipe_path)
    options = replace(resolve(loaded, build_args, secrets, log_lines), labels=parse_labels(labels))
    repo_tags = check_image_names(tags, push_refs) or [f"{loaded.recipe.name}:{loaded.recipe.tag}"]
    store = Store()
    specs = [OutputSpec.parse(o) for o in outputs] or [OutputSpec("oci", Path("dist") / loaded.recipe.name)]
    platforms = select_platforms(loaded, platform_list)
    formats = _sbom_formats(sbom_formats)  # a wrong --sbom costs no build
    for_docker = choose_docker_platform(platforms, docker_platform)
    check_outputs(specs, platforms, for_docker, loaded.path)
    from xarch.build.ignorefile import (
        never_source,  # an output or the cache in the recipe folder is no source
    )

    never_source([spec.path for spec in specs] + [store.root])
    check_sources(loaded, platforms)
    if any(stage.steps for stage in loaded.recipe.stages.values()):
        from xarch.build.stages import check_strategies  # before the lock and any download

        check_strategies(loaded, platforms, strategy, reporter)
    epoch, epoch_source = resolve_epoch(loaded)
    reporter.info(f"building {loaded.recipe.name} for {', '.join(p.name for p in platforms)} "
                  f"(epoch {epoch}: {epoch_source})")
    lock = ensure_lock(loaded, locked, store, reporter)
    python = None
    if loaded.recipe.python is not None:
        from xarch.build.python import ensure_python_lock

        python = ensure_python_lock(loaded, lock, locked, reporter)
    stage_python = {}  # without a stage's python: (its modules load only for a recipe that has one)
    if any(stage.python is not None for stage in loaded.recipe.stages.values()):
        from xarch.build.python_stages import ensure_stage_locks

        stage_python = ensure_stage_locks(loaded, lock, locked, reporter)
    artifact = build(BuildInputs(loaded, platforms, epoch, lock, strategy, store, not no_cache,
                                 options=options, python=python, stage_python=stage_python), reporter)
    loaded.keep()  # the recipe, as validated, for the next build (xarch.recipecache)
    if formats or provenance:
        from xarch.sbom.attach import attach_to

        artifact = attach_to(artifact, loaded, lock, epoch, formats, provenance)
    from xarch.build.imagecache import cacheable
    from xarch.cli.replay import finish

    # When this command line may be replayed, remember what the build read (xarch.records);
    # before the outputs are written, whose writing reads nothing that is an input.
    finish(artifact, outputs, loaded.path, epoch, str(Path("dist") / loaded.recipe.name), cacheable(loaded))
    for spec in specs:
        write_output(artifact, spec, epoch, repo_tags, for_docker, loaded.path)
        reporter.info(f"wrote {spec}")
        if artifact.attachments and spec.kind == "docker-archive":
            reporter.info(f"{spec}: a docker-archive has no place for SBOMs or provenance "
                          "(use oci: or --push)")
    if load_tag is not None:
        from xarch.docker.load import load_built_image

        for name in [load_tag] if load_tag else repo_tags:
            loaded_image = load_built_image(image_for(artifact, for_docker), name)
            reporter.info(f"loaded {for_docker.name} into Docker as {loaded_image.tag}")
    if push_refs:
        pushed = push_artifact(artifact, push_refs, remote, quiet or as_json)
        if signer is not None:
            from xarch.cli.signing import sign_pushed

            for reference in pushed:
                sign_pushed(reference, signer, remote.settings(reference), quiet=quiet or as_json)
    summary = summarize_artifact(artifact, str(specs[0]), specs[0].kind)
    print_summary(summary, as_json, terminal())


def _sbom_formats(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    from xarch.sbom.attach import parse_formats

    return parse_formats(text)


def check_image_names(tags: Sequence[str], push_refs: Sequence[str]) -> list[str]:
    """Check every -t and --push reference before the build (one line naming a bad one); the tags."""
    from xarch.registry.reference import parse_reference

    for option, names in (("-t", tags), ("--push", push_refs)):
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise XarchError(f"{option} {repeated[0]!r}: given twice")
        for name in names:
            try:
                reference = parse_reference(name)
            except XarchError as error:
                raise XarchError(f"{option} {name!r}: {error}") from None
            if option == "-t" and reference.digest:
                raise XarchError(f"-t {name!r}: a tag names the image, not a digest")
    return [name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest" for name in tags]


def push_artifact(artifact: Artifact, refs: Sequence[str] | str, remote: Remote, quiet: bool) -> list[str]:
    """Push ARTIFACT to each of REFS from where the build left it (blobs in the store and in memory,
    not hashed again), through the same code as `xarch push`. Returns each pushed reference,
    pinned to the index digest."""
    from xarch.registry.progress import progress_for
    from xarch.registry.push import push_source
    from xarch.registry.push_source import ArtifactSource

    source = ArtifactSource(artifact)
    return [push_source(source, ref, settings=remote.settings(ref),
                        progress=progress_for(quiet=quiet)).reference
            for ref in ([refs] if isinstance(refs, str) else refs)]
