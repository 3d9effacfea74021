"""The command line. Thin: parse, call, print. Errors are one line and a non-zero exit."""

from __future__ import annotations

import errno
import importlib
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from xarch import __version__
from xarch import platforms as platform_data
from xarch.build import BuildInputs, build
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
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, _, attribute = self.lazy[name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)


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
@click.option("--push", "push_ref", metavar="REF", help="Also push the index to REF (host/repo:tag).")
@click.option("--insecure", is_flag=True, help="With --push: plain HTTP / no TLS verification.")
@click.option("--load", "load_tag", is_flag=False, flag_value="", default=None, metavar="[TAG]",
              help="Also load the host's (or --docker-platform's) image into Docker, tagged.")
@click.option("-v", "--verbose", is_flag=True,
              help="Say what each step does, and which scripts were not run.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but the result.")
def build_command(recipe_path: Path, platform_list: str | None, outputs: tuple[str, ...],
                  docker_platform: str | None, as_json: bool, strategy: str | None, locked: bool,
                  no_cache: bool, push_ref: str | None, insecure: bool, load_tag: str | None, verbose: bool,
                  quiet: bool) -> None:
    """Build the recipe for every platform into one OCI image index."""
    reporter = Reporter(quiet=quiet or as_json, verbose=verbose)
    loaded = load(recipe_path)
    store = Store()
    specs = [OutputSpec.parse(o) for o in outputs] or [OutputSpec("oci", Path("dist") / loaded.recipe.name)]
    platforms = select_platforms(loaded, platform_list)
    for_docker = choose_docker_platform(platforms, docker_platform)
    check_outputs(specs, platforms, for_docker, loaded.path)
    check_sources(loaded, platforms)
    epoch, epoch_source = resolve_epoch(loaded)
    reporter.info(f"building {loaded.recipe.name} for {', '.join(p.name for p in platforms)} "
                  f"(epoch {epoch}: {epoch_source})")
    lock = ensure_lock(loaded, locked, store, reporter)
    python = None
    if loaded.recipe.python is not None:
        from xarch.sources.python.commands import ensure_python_lock

        python = ensure_python_lock(loaded, lock, locked, reporter)
    inputs = BuildInputs(loaded, platforms, epoch, lock, strategy, store, not no_cache, python=python)
    artifact = build(inputs, reporter)
    repo_tag = f"{loaded.recipe.name}:{loaded.recipe.tag}"
    for spec in specs:
        write_output(artifact, spec, epoch, repo_tag, for_docker, loaded.path)
        reporter.info(f"wrote {spec}")
    if load_tag is not None:
        from xarch.docker.load import load_built_image

        loaded_image = load_built_image(image_for(artifact, for_docker), load_tag or repo_tag)
        reporter.info(f"loaded {for_docker.name} into Docker as {loaded_image.tag}")
    if push_ref:
        push_artifact(artifact, push_ref, insecure, quiet or as_json)
    summary = summarize_artifact(artifact, str(specs[0]), specs[0].kind)
    print_summary(summary, as_json, stdout)


def push_artifact(artifact: Artifact, ref: str, insecure: bool, quiet: bool) -> None:
    """Push through a layout written to a temporary folder: the same path as `xarch push`."""
    from xarch.registry.commands import Settings, progress_for
    from xarch.registry.push import push_layout

    with tempfile.TemporaryDirectory(prefix="xarch-push-") as tmp:
        layout = Path(tmp) / "layout"
        write_layout(artifact, layout)
        push_layout(layout, ref, settings=Settings(insecure=insecure), progress=progress_for(quiet=quiet))


@cli.command("inspect")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def inspect_command(target: str, as_json: bool) -> None:
    """Show the images of an OCI layout, oci-archive or docker-archive (or oci:DIR, oci-archive:FILE,
    docker-archive:FILE)."""
    from xarch.imageref import LOCAL_KINDS, parse_image_ref

    ref = parse_image_ref(target, LOCAL_KINDS, "inspect")
    assert ref.path is not None
    print_summary(summarize_path(ref.path, ref.kind, target), as_json, stdout)


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
@click.option("--strategy", type=click.Choice(["auto", "native", "cross", "emulate"]), default=None,
              help="How stage steps run in every build (default: each stage's; with --against: the "
                   "strategy the published image recorded, which this must match).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_command(recipe_path: Path, platform_list: str | None, variation_list: str | None,
                   against: str | None, insecure: bool, strategy: str | None, as_json: bool) -> None:
    """Rebuild the recipe under varied conditions (like reprotest) and compare every digest."""
    from xarch.verify import parse_variations, print_report, rebuild_and_compare, verdict_error

    loaded = load(recipe_path)
    platforms = select_platforms(loaded, platform_list)
    if against:
        from xarch.against import published_strategies, rebuilt_side
        from xarch.errors import Verdict
        from xarch.imageref import OCI, OCI_ARCHIVE, REGISTRY, parse_image_ref
        from xarch.registry.against import print_against, verify_against
        from xarch.registry.client import Settings

        # Parsed before the rebuild: a wrong argument costs no build, and a local file never goes
        # to a registry.
        ref = parse_image_ref(against, (OCI, OCI_ARCHIVE, REGISTRY), "--against")
        reporter = Reporter(quiet=as_json)
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
        return
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
        _fail(f"xarch: error: {error}", error.exit_code, error.details)
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


def _fail(message: str, code: int, details: Sequence[str] = ()) -> NoReturn:
    """Print MESSAGE as exactly one line (a file name may hold a newline or bytes that are not UTF-8),
    then DETAILS (a failed step's last output lines), each indented as quoted context."""
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    click.echo(one_line.encode("utf-8", "backslashreplace").decode("utf-8"), err=True)
    for line in details:
        click.echo("  | " + line.encode("utf-8", "backslashreplace").decode("utf-8"), err=True)
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
