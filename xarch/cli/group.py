"""The `xarch` command group: a lazy command table whose `--help` imports no command.

Kept apart from xarch.cli.main so that a build replayed from its record (xarch.cli.replay) loads
no click at all.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from xarch import __version__


class LazyGroup(click.Group):
    """Commands from other packages load only when run (or listed): startup stays fast.

    The pattern click's documentation gives for lazily loaded subcommands.
    """

    # name: (module:attribute, the one line `xarch --help` lists, so listing imports no command)
    lazy: dict[str, tuple[str, str]] = {
        "build": ("xarch.cli.build:build_command",
                  "Build the recipe for every platform into one OCI image index."),
        "inspect": ("xarch.cli.inspect:inspect_command",
                    "Show the images of a layout or archive, or a registry image's signatures."),
        "verify": ("xarch.cli.verify:verify_command",
                   "Rebuild under varied conditions, or against a published image; compare digests."),
        "lock": ("xarch.cli.lock:lock_command",
                 "Resolve and pin every package for every platform into xarch.lock."),
        "outdated": ("xarch.cli.outdated:outdated_command",
                     "List locked packages with a newer version in their archives (exit 1 if any)."),
        "push": ("xarch.cli.push:push_command",
                 "Push an OCI layout or oci-archive to a registry reference."),
        "assemble": ("xarch.cli.assemble:assemble_command",
                     "Build an index from per-platform manifests already in a registry; push it."),
        "load": ("xarch.cli.load:load_command",
                 "Load one platform of a layout or archive into the local Docker engine."),
        "plugin": ("xarch.cli.plugin:plugin_group",
                   "Use xarch as a Docker CLI plugin (`docker xarch ...`)."),
        "platforms": ("xarch.cli.platforms:platforms_command",
                      "Which strategies (native, cross, emulate) work here for each platform."),
        "diff": ("xarch.cli.diff:diff_command",
                 "Compare two images down to the file (exit 1 when they differ)."),
        "trace": ("xarch.cli.trace:trace_command",
                  "Run the image under strace and record the paths it uses in xarch.trace."),
        "serve": ("xarch.cli.serve:serve_command",
                  "Keep xarch loaded so that builds and pushes start at once (a build server)."),
        "sbom": ("xarch.cli.sbom:sbom_command",
                 "Print (or write) the SBOM attached to an image."),
        "referrers": ("xarch.cli.referrers:referrers_command",
                      "List what is attached to an image: SBOMs, provenance, attestations."),
        "sign": ("xarch.cli.sign:sign_command",
                 "Sign a pushed index and every platform manifest, as cosign does."),
        "verify-signature": ("xarch.cli.verify_signature:verify_signature_command",
                             "Check that an index and every manifest carry a cosign signature by KEY."),
        "attest": ("xarch.cli.attest:attest_command",
                   "Attach a signed in-toto statement to a registry image, as cosign does."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, the lazy ones included, sorted (for --help), without importing any."""
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command NAME, importing its module only now (None when unknown), prepared (`prepare`):
        its empty values refused, its usage errors naming it.
        """
        if name in self.lazy:
            module_name, _, attribute = self.lazy[name][0].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
        else:
            command = super().get_command(ctx, name)
        if command is not None:
            prepare(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table: `xarch --help` stays fast and imports no command."""
        rows = [(name, self.lazy[name][1]) for name in sorted(self.lazy)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def prepare(command: click.Command) -> None:
    """COMMAND and each of its subcommands, made to refuse empty values (refuse_empty_values) and
    to name themselves in their usage errors (name_usage_errors). Each is set on the instance
    once, so a command asked for twice is not wrapped twice."""
    refuse_empty_values(command)
    name_usage_errors(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            prepare(sub)


def refuse_empty_values(command: click.Command) -> None:
    """Make every option and argument of COMMAND refuse "".

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


def name_usage_errors(command: click.Command) -> None:
    """Make every usage error of COMMAND carry its context, so that the
    one line it ends as (xarch.cli.main) names the command and its --help.

    Click's option parser raises "Option '-o' requires an argument" and "does not take a value"
    without one (click 8.1, parser.py); a command parses its arguments in parse_args, where the
    context is known, so the context is attached there.
    """
    if not getattr(command, "names_usage_errors", False):
        command.parse_args = _naming(command.parse_args)  # type: ignore[method-assign]
        command.names_usage_errors = True  # type: ignore[attr-defined]


def _naming(parse: Any) -> Any:
    def parse_args(ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return list(parse(ctx, args))
        except click.UsageError as error:
            if error.ctx is None:
                error.ctx = ctx
            raise

    return parse_args


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


prepare(cli)  # `xarch -o` and `xarch --bogus`, as its commands' own (get_command)
