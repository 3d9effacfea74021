"""Options and argument helpers shared by xarch's commands, defined once."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from xarch import platforms as platform_data
from xarch.errors import XarchError
from xarch.recipe import DEFAULT_FILE, LoadedRecipe
from xarch.registry.auth import Credentials
from xarch.registry.errors import RegistryUsageError
from xarch.registry.push import PushResult
from xarch.smallfile import checked_ca_cert
from xarch.units import human_size

# A pipe gets a wide table rather than rich's 80 columns, so digests are never cut.
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


recipe_option = click.option(
    "-f", "--file", "recipe_path", default=DEFAULT_FILE, show_default=True, type=click.Path(path_type=Path),
    help="The recipe, or a folder holding xarch.yaml.",
)


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


F = TypeVar("F", bound=Callable[..., Any])


def connection_options(command: F) -> F:
    """--insecure, --ca-cert, --username, --password-stdin, --json: shared by every registry command."""
    for option in reversed([
        click.option("--insecure", is_flag=True,
                     help="Allow plain HTTP and unverified TLS (localhost gets plain HTTP without it)."),
        click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), callback=checked_ca_cert,
                     help="PEM bundle of the CA that signed the registry's certificate."),
        click.option("--username", "-u", help="Registry user (default: ~/.docker/config.json)."),
        click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No per-blob progress."),
    ]):
        command = option(command)
    return command


def credentials_from_options(username: str | None, password_stdin: bool) -> Credentials | None:
    """Credentials typed by the user, or None to use the Docker config's."""
    if password_stdin:
        if not username:
            raise RegistryUsageError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise RegistryUsageError("--password-stdin: standard input held no password")
        return Credentials(username=username, password=password)
    if username:
        raise RegistryUsageError(
            "--username needs --password-stdin (passwords are never taken on the command line)")
    return None


def parse_annotations(pairs: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RegistryUsageError(f"--annotation {pair!r}: expected KEY=VALUE")
        result[key] = value
    return result


def report(result: PushResult, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
        return
    stats = result.stats
    click.echo(f"{verb} {result.reference}")
    for name, digest in result.manifests.items():
        click.echo(f"  {name:<10} {digest}")
    click.echo(f"  blobs: {stats.blobs_sent} sent ({human_size(stats.bytes_sent)}), "
               f"{stats.blobs_skipped} already there ({human_size(stats.bytes_skipped)}), "
               f"{stats.blobs_mounted} mounted ({human_size(stats.bytes_mounted)})")
    if result.referrers:
        how = "the referrers API" if set(result.referrers.values()) == {"api"} else "the referrers tag"
        click.echo(f"  referrers: {len(result.referrers)} attached (SBOMs, provenance) through {how}")


key_option = click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
                          help="cosign's key file (cosign generate-key-pair).")


password_option = click.option("--password-stdin", is_flag=True,
                               help="Read the key's password from stdin (default: $COSIGN_PASSWORD).")


insecure_option = click.option("--insecure", is_flag=True, help="Plain HTTP / no TLS verification.")


ca_cert_option = click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
                              callback=checked_ca_cert,
                              help="PEM bundle of the CA that signed the registry's certificate.")


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def say(message: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    click.echo(message, err=True)
