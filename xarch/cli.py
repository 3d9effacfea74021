"""The command line. Thin: parse, call, print. Errors are one line and a non-zero exit."""

from __future__ import annotations

import errno
import importlib
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from xarch import __version__
from xarch import platforms as platform_data
from xarch.build import BuildInputs, build
from xarch.buildopts import DEFAULT_LOG_LINES
from xarch.contents import check_sources
from xarch.errors import ExitCode, XarchError
from xarch.oci.layout import Artifact, write_layout
from xarch.outputs import OutputSpec, check_outputs, image_for, write_output
from xarch.packages import ensure_lock
from xarch.progress import Reporter
from xarch.recipe import DEFAULT_FILE, LoadedRecipe, load, resolve_epoch
from xarch.store import Store
from xarch.summary import print_summary, summarize_artifact, summarize_path

# A pipe gets a wide table rather than rich's 80 columns, so digests are never cut.
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def select_platforms(
    loaded: LoadedRecipe, requested: str | None
) -> tuple[platform_data.Platform, ...]:
    """The recipe's platforms, or those of --platform, in the recipe's order."""
    names = loaded.recipe.platforms
    if not requested:
        return tuple(platform_data.get(name) for name in names)
    wanted = []
    for item in requested.split(","):
        try:
            plat = platform_data.get(item)
        except platform_data.UnknownPlatform as error:
            raise XarchError(f"--platform: {error}") from None
        if plat.name not in names:
            known = ", ".join(names)
            raise XarchError(f"--platform {item}: not among {loaded.path.name}'s platforms ({known})")
        wanted.append(plat.name)
    return tuple(platform_data.get(name) for name in names if name in wanted)


def choose_docker_platform(
    platforms: tuple[platform_data.Platform, ...], chosen: str | None
) -> platform_data.Platform:
    if chosen:
        try:
            return platform_data.get(chosen)
        except platform_data.UnknownPlatform as error:
            raise XarchError(f"--docker-platform: {error}") from None
    if len(platforms) == 1:
        return platforms[0]
    return platform_data.host()


class LazyGroup(click.Group):
    """Commands from other packages load only when run (or listed): startup stays fast.

    The pattern click's documentation gives for lazily loaded subcommands.
    """

    lazy: dict[str, str] = {
        "lock": "xarch.cli_lazy:lock_command",
        "push": "xarch.registry.commands:push_command",
        "assemble": "xarch.registry.commands:assemble_command",
        "load": "xarch.docker.commands:load_command",
        "plugin": "xarch.docker.commands:plugin_group",
        "platforms": "xarch.run.commands:platforms_command",
        "diff": "xarch.diff.commands:diff_command",
        "outdated": "xarch.cli_lazy:outdated_command",
        "trace": "xarch.trace.commands:trace_command",
        "sbom": "xarch.sbom.commands:sbom_command",
        "referrers": "xarch.sbom.commands:referrers_command",
        "sign": "xarch.sign.commands:sign_command",
        "verify-signature": "xarch.sign.commands:verify_signature_command",
        "attest": "xarch.sign.commands:attest_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, _, attribute = self.lazy[name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
        else:
            command = super().get_command(ctx, name)
        if command is not None:
            refuse_empty_values(command)
        return command


def refuse_empty_values(command: click.Command) -> None:
    """Make every option and argument of COMMAND (and of its subcommands) refuse "".

    An empty value is a mistake, never a request for the default: `--platform ""` built every
    platform, `--against ""` ran a plain verify and `-f ""` read ./xarch.yaml (click turns "" into
    the path "."). One check, on the raw value before click converts it, for every parameter, so
    an option added later cannot forget it. Click reports it as a usage error, exit 2.
    """
    for param in command.params:
        if isinstance(param, click.Option) and param.flag_value == "":
            continue  # `--load` alone means "" (its default name): bare and empty are one to click
        if not getattr(param, "refuses_empty", False):
            # Set on the instance: click has no hook that sees raw values for all parameters.
            param.process_value = _refusing_empty(param, param.process_value)  # type: ignore[method-assign]
            param.refuses_empty = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            refuse_empty_values(sub)


def _refusing_empty(param: click.Parameter, process: Any) -> Any:
    def process_value(ctx: click.Context, value: Any) -> Any:
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(item, str) and not item.strip() for item in values):
            raise click.BadParameter("must not be empty", ctx=ctx, param=param)
        return process(ctx, value)

    return process_value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xarch")
def cli() -> None:
    """Reproducible, minimal, multi-architecture container images from one recipe."""


recipe_option = click.option(
    "-f", "--file", "recipe_path", default=DEFAULT_FILE, show_default=True, type=click.Path(path_type=Path),
    help="The recipe, or a folder holding xarch.yaml.",
)


@cli.command("build")
@recipe_option
@click.option("--platform", "platform_list", help="Comma-separated platforms (default: the recipe's).")
@click.option("-o", "--output", "outputs", multiple=True,
              help="oci:DIR (default dist/<name>), oci-archive:FILE or docker-archive:FILE; repeatable.")
@click.option("--docker-platform", help="The platform a docker-archive holds (default: the host's).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON for CI.")
@click.option("--strategy", type=click.Choice(["auto", "native", "cross", "emulate"]),
              help="How stage steps run for every platform (default: each stage's own, auto).")
@click.option("--locked", is_flag=True, help="Fail if xarch.lock is missing or does not match the recipe.")
@click.option("--no-cache", is_flag=True, help="Rebuild every image even when no input changed.")
@click.option("--push", "push_refs", metavar="REF", multiple=True,
              help="Also push the index to REF (host/repo:tag); repeatable.")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="The name a docker-archive and --load carry (default: the recipe's name:tag); repeatable.")
@click.option("--insecure", is_flag=True, help="With --push: plain HTTP / no TLS verification.")
@click.option("--sign-key", type=click.Path(path_type=Path), metavar="KEY",
              help="With --push: sign the index and every manifest with this cosign key (docs/signing.md).")
@click.option("--password-stdin", is_flag=True, help="With --sign-key: its password from stdin "
              "(default: $COSIGN_PASSWORD).")
@click.option("--load", "load_tag", is_flag=False, flag_value="", default=None, metavar="[TAG]",
              help="Also load the host's (or --docker-platform's) image into Docker, tagged.")
@click.option("-v", "--verbose", is_flag=True, help="Say what each part of the build does.")
@click.option("--show-scripts", is_flag=True,
              help="List the maintainer scripts not run and what xarch wrote in their place.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but the result.")
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
                  no_cache: bool, push_refs: tuple[str, ...], tags: tuple[str, ...], insecure: bool,
                  sign_key: Path | None, password_stdin: bool, load_tag: str | None, verbose: bool,
                  show_scripts: bool, quiet: bool, sbom_formats: str | None, provenance: bool,
                  build_args: tuple[str, ...], secrets: tuple[str, ...], log_lines: int,
                  labels: tuple[str, ...]) -> None:
    """Build the recipe for every platform into one OCI image index."""
    from xarch.buildopts import parse_labels, resolve

    reporter = Reporter(quiet=quiet or as_json, verbose=verbose, show_scripts=show_scripts)
    signer = None
    if sign_key is not None:  # the key is opened before the build: a wrong password costs no build
        if not push_refs:
            raise XarchError("--sign-key needs --push REF (signatures are stored in the registry)")
        from xarch.sign.keys import signing_key_from

        signer = signing_key_from(sign_key, password_stdin)
    loaded = load(recipe_path)
    options = replace(resolve(loaded, build_args, secrets, log_lines), labels=parse_labels(labels))
    repo_tags = check_names(tags, push_refs) or [f"{loaded.recipe.name}:{loaded.recipe.tag}"]
    store = Store()
    specs = [OutputSpec.parse(o) for o in outputs] or [OutputSpec("oci", Path("dist") / loaded.recipe.name)]
    platforms = select_platforms(loaded, platform_list)
    formats = _sbom_formats(sbom_formats)  # a wrong --sbom costs no build
    for_docker = choose_docker_platform(platforms, docker_platform)
    check_outputs(specs, platforms, for_docker, loaded.path)
    from xarch.ignorefile import never_source  # an output or the cache in the recipe folder is no source

    never_source([spec.path for spec in specs] + [store.root])
    check_sources(loaded, platforms)
    if any(stage.steps for stage in loaded.recipe.stages.values()):
        from xarch.stages import check_strategies  # before the lock and any download

        check_strategies(loaded, platforms, strategy, reporter)
    epoch, epoch_source = resolve_epoch(loaded)
    reporter.info(f"building {loaded.recipe.name} for {', '.join(p.name for p in platforms)} "
                  f"(epoch {epoch}: {epoch_source})")
    lock = ensure_lock(loaded, locked, store, reporter)
    python = None
    if loaded.recipe.python is not None:
        from xarch.sources.python.commands import ensure_python_lock

        python = ensure_python_lock(loaded, lock, locked, reporter)
    from xarch.sources.python.stages import ensure_stage_locks

    stage_python = ensure_stage_locks(loaded, lock, locked, reporter)  # {} without a stage's python:
    artifact = build(BuildInputs(loaded, platforms, epoch, lock, strategy, store, not no_cache,
                                 options=options, python=python, stage_python=stage_python), reporter)
    if formats or provenance:
        from xarch.sbom.attach import attach_to

        artifact = attach_to(artifact, loaded, lock, epoch, formats, provenance)
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
        pushed = push_artifact(artifact, push_refs, insecure, quiet or as_json)
        if signer is not None:
            from xarch.registry.client import Settings
            from xarch.sign.commands import sign_pushed

            for reference in pushed:
                sign_pushed(reference, signer, Settings(insecure=insecure), quiet=quiet or as_json)
    summary = summarize_artifact(artifact, str(specs[0]), specs[0].kind)
    print_summary(summary, as_json, stdout)


def _sbom_formats(text: str | None) -> tuple[str, ...]:
    from xarch.sbom.attach import parse_formats

    return parse_formats(text) if text is not None else ()


def check_names(tags: Sequence[str], push_refs: Sequence[str]) -> list[str]:
    """Check every -t and --push reference before the build (one line naming a bad one); the tags."""
    from xarch.registry.reference import parse_reference

    for option, names in (("-t", tags), ("--push", push_refs)):
        for name in names:
            try:
                reference = parse_reference(name)
            except XarchError as error:
                raise XarchError(f"{option} {name!r}: {error}") from None
            if option == "-t" and reference.digest:
                raise XarchError(f"-t {name!r}: a tag names the image, not a digest")
    return [name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest" for name in tags]


def push_artifact(artifact: Artifact, refs: Sequence[str] | str, insecure: bool, quiet: bool) -> list[str]:
    """Push through a layout written to a temporary folder (once for every REFS): the same
    path as `xarch push`. Returns each pushed reference, pinned to the index digest."""
    from xarch.registry.commands import Settings, progress_for
    from xarch.registry.push import push_layout

    with tempfile.TemporaryDirectory(prefix="xarch-push-") as tmp:
        layout = Path(tmp) / "layout"
        write_layout(artifact, layout)
        return [push_layout(layout, ref, settings=Settings(insecure=insecure),
                            progress=progress_for(quiet=quiet)).reference
                for ref in ([refs] if isinstance(refs, str) else refs)]


@cli.command("inspect")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--insecure", is_flag=True, help="A registry image: plain HTTP / no TLS verification.")
@click.option("--platform", help="The image of this platform (arm64), with --config, --files, --packages.")
@click.option("--config", "view", flag_value="config", help="Print the image config.")
@click.option("--files", "view", flag_value="files", help="List every file of the image (layers applied).")
@click.option("--packages", "view", flag_value="packages", help="List the Debian packages the image holds.")
def inspect_command(target: str, as_json: bool, insecure: bool, platform: str | None,
                    view: str | None) -> None:
    """Show the images of an OCI layout, oci-archive or docker-archive (or oci:DIR, oci-archive:FILE,
    docker-archive:FILE); with --config, --files or --packages, inside one of them; of a registry
    image, the cosign signatures and attestations of its index and every manifest."""
    from xarch.imageref import KINDS, REGISTRY, parse_image_ref

    ref = parse_image_ref(target, KINDS, "inspect")
    if ref.kind == REGISTRY:
        from xarch.registry.client import Settings
        from xarch.registry.reference import parse_reference
        from xarch.sign.commands import print_signatures

        assert ref.reference is not None
        print_signatures(parse_reference(ref.reference), Settings(insecure=insecure), as_json)
        return
    assert ref.path is not None
    if view:
        from xarch.inspectview import show

        show(target, platform, view, as_json, stdout)
        return
    if platform:
        raise XarchError("inspect --platform: give --config, --files or --packages as well")
    summary = summarize_path(ref.path, ref.kind, target)
    from xarch.sbom.commands import print_referrers, referrer_rows, rows_json  # attachments (SBOMs, ...)

    referrers = referrer_rows(ref.path, ref.kind)
    if as_json and referrers:
        print(json.dumps({**summary.to_json(), "referrers": rows_json(referrers)}, indent=2, sort_keys=True))
        return
    print_summary(summary, as_json, stdout)
    print_referrers(referrers)


@cli.command("verify")
@recipe_option
@click.option("--platform", "platform_list", help="Comma-separated platforms (default: the recipe's).")
@click.option("--variations", "variation_list",
              help="Comma-separated, default all: build_path, tz, locale, umask, hostname, user, cpus, "
                   "file_order, mtimes, cache.")
@click.option("--against", metavar="IMAGE",
              help="Instead: rebuild once and compare the whole index with this registry image, OCI layout "
                   "or oci-archive.")
@click.option("--insecure", is_flag=True, help="With --against REF: plain HTTP / no TLS verification.")
@click.option("--key", "key_path", type=click.Path(path_type=Path), metavar="KEY",
              help="With --against REF: first check REF's cosign signatures with this key (cosign.pub, or "
                   "cosign.key: its public half), exit 1 when the index or a manifest is unsigned or signed "
                   "otherwise; then compare that digest.")
@click.option("--strategy", type=click.Choice(["auto", "native", "cross", "emulate"]), default=None,
              help="How stage steps run in every build (default: each stage's; with --against: the "
                   "strategy the published image recorded, which this must match).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--attest", is_flag=True,
              help="With --against REF (a registry image): when the rebuild matches, attach a reproduction "
                   "attestation to it ($XARCH_BUILDER_ID names this builder).")
def verify_command(recipe_path: Path, platform_list: str | None, variation_list: str | None,
                   against: str | None, insecure: bool, key_path: Path | None, strategy: str | None,
                   as_json: bool, attest: bool = False) -> None:
    """Rebuild the recipe under varied conditions (like reprotest) and compare every digest."""
    from xarch.verify import parse_variations, print_report, rebuild_and_compare, verdict_error

    loaded = load(recipe_path)
    platforms = select_platforms(loaded, platform_list)
    if attest and not against:
        raise XarchError("--attest: needs --against REF (the published image the attestation is about)")
    if against:
        from xarch.against import published_strategies, rebuilt_side
        from xarch.errors import Verdict
        from xarch.imageref import OCI, OCI_ARCHIVE, REGISTRY, parse_image_ref
        from xarch.registry.against import print_against, verify_against
        from xarch.registry.client import Settings

        # Parsed before the rebuild: a wrong argument costs no build, and a local file never goes
        # to a registry.
        ref = parse_image_ref(against, (OCI, OCI_ARCHIVE, REGISTRY), "--against")
        if attest and ref.kind != REGISTRY:
            raise XarchError(f"--attest: {ref.label} is not a registry image; attestations are pushed "
                             "as referrers of a published index")
        reporter = Reporter(quiet=as_json)
        signer = None  # set when --key is a private key: it also signs what --attest attaches
        if key_path is not None:
            from xarch.sign.commands import checked_signatures

            # Signatures first, before any rebuild; then the digest they cover is what is compared.
            # A private key also signs what --attest attaches (xarch.sign.commands.sign_reproduction).
            ref, signer = checked_signatures(ref, key_path, Settings(insecure=insecure), reporter)
        reporter.info(f"comparing with {ref.label}")
        recorded = published_strategies(ref, Settings(insecure=insecure))
        local = rebuilt_side(loaded, platforms, reporter, strategy, recorded)
        left_out = frozenset(platform_data.get(name).oci for name in loaded.recipe.platforms) \
            - frozenset(p.oci for p in platforms)
        result = verify_against(local, ref, settings=Settings(insecure=insecure), not_rebuilt=left_out)
        print_against(result, as_json, stdout)
        if not result.identical:
            raise Verdict(f"{against} does not match this recipe's rebuild ({len(result.differences)} "
                          "difference(s) above); to see what differs inside: xarch build -o oci:rebuilt && "
                          f"xarch diff oci:rebuilt {against}")
        if attest:
            from xarch.sbom.reproduce import attest as push_attestation

            assert ref.reference is not None
            attached, via = push_attestation(loaded, [p.name for p in platforms], resolve_epoch(loaded)[0],
                                             ref.reference, result, Settings(insecure=insecure))
            reporter.info(f"attached reproduction attestation {attached.digest} to {ref.reference} "
                          f"(referrers {'API' if via == 'api' else 'tag'})")
            if signer is not None:  # --key was the private key: the signed copy cosign reads
                from xarch.sign.commands import sign_reproduction

                sign_reproduction(ref.reference, attached.payload, signer, Settings(insecure=insecure),
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


def run(command: click.Command, args: list[str] | None = None, prog_name: str = "xarch") -> None:
    """Run the click command; every failure ends as one line on stderr and a code of xarch/errors.py.

    XarchError: its message, its exit_code. Usage errors: click's text, exit 2. OSError
    (a full disk, a folder not writable): the path and the reason, exit 2 (3 when the host
    is out of space). Anything else is a bug: one line naming it, exit 70, and the
    traceback only with XARCH_DEBUG=1.
    """
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except XarchError as error:
        _debug_traceback()
        _fail(f"xarch: error: {error}", error.exit_code, error.details, error.hint)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("xarch: interrupted", 130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except BrokenPipeError:
        # The reader went away (`xarch diff … | head`): exit as a shell reports SIGPIPE, with
        # stdout pointed at /dev/null so flushing it at exit cannot fail again (the recipe of
        # Python's signal module documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    except OSError as error:
        _debug_traceback()
        code = ExitCode.HOST if error.errno in _HOST_ERRNOS else ExitCode.INPUT
        _fail(f"xarch: error: {_os_error_text(error)}", code)
    except RecursionError as error:
        # A reader that recursed on nested input the checks did not bound; exit 2 (the input), not 70.
        _debug_traceback()
        _fail(f"xarch: error: input nested too deeply to process ({error})", ExitCode.INPUT)
    except Exception as error:
        _debug_traceback()
        _fail(f"xarch: internal error: {type(error).__name__}: {error} "
              "(this is a bug; XARCH_DEBUG=1 shows the traceback)", ExitCode.INTERNAL)


# A full disk or quota is the host's, not the input's.
_HOST_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _os_error_text(error: OSError) -> str:
    """`PATH: reason`, naming both paths of a rename or link."""
    reason = error.strerror or str(error)
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _fail(message: str, code: int, details: Sequence[str] = (), hint: str = "") -> NoReturn:
    """Print MESSAGE as exactly one line (a file name may hold a newline or bytes that are not UTF-8),
    then DETAILS (a failed step's last output lines), each indented as quoted context."""
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    click.echo(one_line.encode("utf-8", "backslashreplace").decode("utf-8"), err=True)
    for line in details:
        click.echo("  | " + line.encode("utf-8", "backslashreplace").decode("utf-8"), err=True)
    if hint:
        click.echo("hint: " + " ".join(hint.split()), err=True)
    sys.exit(code)


def _debug_traceback() -> None:
    if os.environ.get("XARCH_DEBUG") == "1":
        traceback.print_exc()


def _terminated(signum: int, frame: object) -> None:
    # SystemExit unwinds like an exception, so atomic_dir/atomic_file remove their staging.
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    run(cli)


if __name__ == "__main__":
    main()
