"""Where the Docker config is looked for (the docker SDK's and the Docker CLI's order), apart from
the auth code so that a push replayed from its record (xarch.cli.pushreplay) can check the same
places without loading requests."""

from __future__ import annotations

import os


def config_candidates(config_path: str | None = None) -> list[str]:
    """The paths find_config_file tries, in order: CONFIG_PATH, $DOCKER_CONFIG/config.json,
    ~/.docker/config.json, then the legacy ~/.dockercfg."""
    from_environment = os.environ.get("DOCKER_CONFIG")
    home = os.path.expanduser("~")
    paths = [config_path, os.path.join(from_environment, "config.json") if from_environment else None,
             os.path.join(home, ".docker", "config.json"), os.path.join(home, ".dockercfg")]
    return [path for path in paths if path]


def find_config_file(config_path: str | None = None) -> str | None:
    """The Docker config file the docker SDK reads (docker.utils.config.find_config_file, the Docker
    CLI's order, config_candidates): the first that exists, else None. Here so that finding none
    imports no SDK."""
    return next((path for path in config_candidates(config_path) if os.path.exists(path)), None)
