"""`xarch plugin`: xarch as a Docker CLI plugin (`docker xarch ...`)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import click

from xarch import __version__
from xarch.errors import XarchError

PLUGIN_NAME = "xarch"


METADATA_COMMAND = "docker-cli-plugin-metadata"


def plugin_metadata() -> dict[str, str]:
    """What the Docker CLI expects from `docker-xarch docker-cli-plugin-metadata`."""
    return {
        "SchemaVersion": "0.1.0",
        "Vendor": "xarch",
        "Version": __version__,
        "ShortDescription": "Reproducible multi-architecture images from one recipe",
    }


def docker_plugin_main(argv: list[str] | None = None) -> None:
    """Entry point of the `docker-xarch` console script (the Docker CLI runs it as `docker-xarch
    xarch ARGS…`): the plugin metadata, or the command line as `xarch` runs it
    (xarch.cli.main.command_line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == [METADATA_COMMAND]:
        print(json.dumps(plugin_metadata(), indent=1))
        return
    if args[:1] == [PLUGIN_NAME]:
        args = args[1:]
    from xarch.cli.main import command_line

    # As `xarch` runs, not handed to a build server: a served command would name itself `xarch`.
    command_line(args, prog_name=f"docker {PLUGIN_NAME}")


def default_plugin_dir() -> Path:
    """Where the Docker CLI looks for the current user's plugins."""
    config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(config) / "cli-plugins"


def plugin_script(python: str, package_parent: Path) -> str:
    """The `docker-xarch` executable: metadata from a heredoc, everything else to xarch.

    A shell script rather than a symlink to a console script, so it works from a source
    checkout too, and runs the Python xarch was installed into whatever PATH says later.
    """
    metadata = json.dumps(plugin_metadata(), indent=1)
    return f"""#!/bin/sh
# Docker CLI plugin for xarch, written by `xarch plugin install`.
if [ "$#" -eq 1 ] && [ "$1" = {METADATA_COMMAND} ]; then
    cat <<'EOF'
{metadata}
EOF
    exit 0
fi
PYTHONPATH={shlex.quote(str(package_parent))}${{PYTHONPATH:+:$PYTHONPATH}}
export PYTHONPATH
exec {shlex.quote(python)} -c 'from xarch.cli.plugin import docker_plugin_main; docker_plugin_main()' "$@"
"""


def install_plugin(plugin_dir: Path | None = None, python: str | None = None) -> Path:
    """Write an executable docker-xarch into PLUGIN_DIR (default ~/.docker/cli-plugins)."""
    import xarch

    target_dir = plugin_dir or default_plugin_dir()
    target = target_dir / f"docker-{PLUGIN_NAME}"
    package_parent = Path(xarch.__file__).resolve().parent.parent
    script = plugin_script(python or sys.executable, package_parent)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.tmp")
        staging.write_text(script)
        staging.chmod(0o755)
        staging.replace(target)  # whole or not at all: docker may run it at any moment
    except OSError as error:
        raise XarchError(f"cannot install the Docker plugin at {target}: {error.strerror}") from None
    return target


@click.group("plugin")
def plugin_group() -> None:
    """Use xarch as a Docker CLI plugin (`docker xarch …`)."""


@plugin_group.command("install")
@click.option("--dir", "plugin_dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"Plugin folder (default: {default_plugin_dir()}).")
def plugin_install_command(plugin_dir: Path | None) -> None:
    """Install docker-xarch so that `docker xarch build …` works like `xarch build …`."""
    target = install_plugin(plugin_dir)
    click.echo(f"installed {target}; try: docker xarch --help")
