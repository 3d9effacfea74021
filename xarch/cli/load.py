"""`xarch load`: one platform's image of a layout into the local Docker daemon."""

from __future__ import annotations

import json

import click

from xarch.cli.options import json_option
from xarch.docker.load import load_image
from xarch.registry.imageref import LOCAL_KINDS, parse_image_ref


@click.command("load")
@click.argument("source")
@click.option("--platform", help="The image to load from a multi-arch layout (default: the host's).")
@click.option("-t", "--tag", help="Name in Docker, e.g. myapp:1.0 (default: from the layout's name).")
@json_option
def load_command(source: str, platform: str | None, tag: str | None, as_json: bool) -> None:
    """Load one platform of an OCI layout folder, oci-archive or docker-archive (or oci:DIR,
    oci-archive:FILE, docker-archive:FILE) into the local Docker engine."""
    ref = parse_image_ref(source, LOCAL_KINDS, "load")
    assert ref.path is not None
    loaded = load_image(ref.path, platform=platform, tag=tag, kind=ref.kind)
    if as_json:
        click.echo(json.dumps({"image_id": loaded.image_id, "platform": loaded.platform, "source": ref.label,
                               "tag": loaded.tag}, sort_keys=True))
        return
    click.echo(f"loaded {loaded.tag} ({loaded.platform}) {loaded.image_id} from {ref.label}")
