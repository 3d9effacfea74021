"""Click commands of the Docker side: `xarch load` and `xarch plugin install`.

The CLI adds them with `cli.add_command(load_command)` and `cli.add_command(plugin_group)`.
"""

from __future__ import annotations

from pathlib import Path

import click

from xarch.docker.load import load_image
from xarch.docker.plugin import default_plugin_dir, install_plugin
from xarch.registry.imageref import LOCAL_KINDS, parse_image_ref


@click.command("load")
@click.argument("source")
@click.option("--platform", help="The image to load from a multi-arch layout (default: the host's).")
@click.option("-t", "--tag", help="Name in Docker, e.g. myapp:1.0 (default: from the layout's name).")
def load_command(source: str, platform: str | None, tag: str | None) -> None:
    """Load one platform of an OCI layout folder, oci-archive or docker-archive (or oci:DIR,
    oci-archive:FILE, docker-archive:FILE) into the local Docker engine."""
    ref = parse_image_ref(source, LOCAL_KINDS, "load")
    assert ref.path is not None
    loaded = load_image(ref.path, platform=platform, tag=tag, kind=ref.kind)
    click.echo(f"loaded {loaded.tag} ({loaded.platform}) {loaded.image_id} from {ref.label}")


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
