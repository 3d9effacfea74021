"""Options and argument helpers shared by xarch's commands, defined once."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from xarch.errors import XarchError
from xarch.registry.errors import RegistryUsageError
from xarch.smallfile import checked_ca_cert
from xarch.visible import visible

if TYPE_CHECKING:
    from xarch import platforms as platform_data
    from xarch.recipe import LoadedRecipe
    from xarch.registry.auth import Credentials
    from xarch.registry.client import Settings

F = TypeVar("F", bound=Callable[..., Any])

# xarch.recipe.DEFAULT_FILE (tests/test_push_from_store.py checks they agree), not imported: the
# recipe model costs 0.1 s of start-up that commands without a recipe (push, inspect) need not pay.
DEFAULT_FILE = "xarch.yaml"

if TYPE_CHECKING:
    from rich.console import Console

    stdout: Console


def __getattr__(name: str) -> Any:
    """`stdout`, the rich Console results are printed on (xarch.cli.console), made when a command
    first imports it (PEP 562): commands that print no table (push) do not load rich."""
    if name != "stdout":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from xarch.cli import console

    return console.stdout


recipe_option = click.option(
    "-f", "--file", "recipe_path", default=DEFAULT_FILE, show_default=True, type=click.Path(path_type=Path),
    help="The recipe, or a folder holding xarch.yaml.",
)


def select_platforms(
    loaded: LoadedRecipe, requested: str | None
) -> tuple[platform_data.Platform, ...]:
    """The recipe's platforms, or those of --platform, in the recipe's order."""
    from xarch import platforms as platform_data  # here: commands without a recipe need not load it

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
    """The platform `--load` gives Docker: CHOSEN (--docker-platform) when given, else the only one
    of PLATFORMS, else the host's. XarchError (exit 2) for an unknown CHOSEN.
    """
    from xarch import platforms as platform_data

    if chosen:
        try:
            return platform_data.get(chosen)
        except platform_data.UnknownPlatform as error:
            raise XarchError(f"--docker-platform: {error}") from None
    if len(platforms) == 1:
        return platforms[0]
    return platform_data.host()


# Registry tokens are long (a cloud provider's JWT runs to a few KiB) but not this long.
MAX_REGISTRY_PASSWORD = 64 * 1024  # bytes


def credentials_from_options(username: str | None, password_stdin: bool) -> Credentials | None:
    """Credentials typed by the user, or None to use the Docker config's."""
    if password_stdin:
        from xarch.registry.auth import Credentials  # here: it imports the docker SDK and requests

        if not username:
            raise RegistryUsageError("--password-stdin needs --username")
        # Bounded, as a signing key's is: `--password-stdin < /dev/zero` would read until memory runs out.
        line = sys.stdin.buffer.readline(MAX_REGISTRY_PASSWORD + 2)
        if len(line.rstrip(b"\r\n")) > MAX_REGISTRY_PASSWORD:
            raise RegistryUsageError(f"--password-stdin: the first line of standard input is longer than "
                                     f"{MAX_REGISTRY_PASSWORD} bytes (is it the right input?)")
        try:
            password = line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryUsageError("--password-stdin: the password is not UTF-8") from None
        if not password:
            raise RegistryUsageError("--password-stdin: standard input held no password")
        return Credentials(username=username, password=password)
    if username:
        raise RegistryUsageError(
            "--username needs --password-stdin (passwords are never taken on the command line)")
    return None


def parse_annotations(pairs: tuple[str, ...]) -> dict[str, str]:
    """{key: value} from --annotation KEY=VALUE PAIRS; RegistryUsageError (exit 2) without a `=`, a key,
    or with a control character in the key (the rule of a recipe's annotation keys; values may hold
    any, as the recipe's may, so that assemble can match a local build's bytes)."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
            raise RegistryUsageError(f"--annotation {pair!r}: expected KEY=VALUE, a key without "
                                     "control characters")
        result[key] = value
    return result


key_option = click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
                          help="cosign's key file (cosign generate-key-pair).")


password_option = click.option("--password-stdin", is_flag=True,
                               help="Read the key's password from stdin (default: $COSIGN_PASSWORD).")


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for CI).")


# Commands that build take a list of the recipe's platforms (as `docker buildx build --platform`);
# commands that read an image take one platform of it (as `docker pull --platform`).
platforms_option = click.option("--platform", "platform_list", metavar="P1,P2",
                                help="Comma-separated platforms of the recipe (default: all of them).")


def say(message: str) -> None:
    """A progress line on stderr (stdout stays for results), control characters escaped (xarch.visible)."""
    click.echo(visible(message), err=True)


quiet_option = click.option("-q", "--quiet", is_flag=True, help="Print nothing but the result.")


@dataclass(frozen=True)
class Remote:
    """How this command reaches registries, from the options `remote_options` adds.

    Typed credentials (`-u` with `--password-stdin`) go only to the registry of the reference
    they are given for (`settings(reference)`); any other registry gets the Docker config's.
    """

    insecure: bool = False
    ca_cert: str | None = None
    credentials: Credentials | None = None

    def settings(self, *references: str | None, **overrides: Any) -> Settings:
        """Client settings for REFERENCES (registry references; None for a local image).

        Raises RegistryUsageError (exit 2) when typed credentials would serve two registries, or none.
        """
        from xarch.registry.client import Settings
        from xarch.registry.reference import parse_reference

        host = None
        if self.credentials is not None:
            hosts = sorted({parse_reference(text).host for text in references if text})
            if len(hosts) > 1:
                raise RegistryUsageError(f"--username: {' and '.join(hosts)} are two registries; typed "
                                         "credentials serve one (log in to the other with docker login)")
            if not hosts:  # a password read for nothing is a mistake, not a default
                raise RegistryUsageError("--username: no registry reference here to use it for")
            host = hosts[0]
        return Settings(insecure=self.insecure, ca_cert=self.ca_cert, credentials=self.credentials,
                        credentials_host=host, **overrides)


def remote_options(password: bool = True) -> Callable[[F], F]:
    """Add --insecure, --ca-cert and (with PASSWORD) -u/--username and --password-stdin to a command.

    The command receives them as one `remote: Remote`. PASSWORD is False for commands whose
    --password-stdin is a signing key's (build, sign, attest): those read registry credentials
    from the Docker config (`docker login`), as buildx and cosign do.
    """
    options = [
        click.option("--insecure", is_flag=True,
                     help="Allow plain HTTP and unverified TLS (localhost gets plain HTTP without it)."),
        click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), callback=checked_ca_cert,
                     help="PEM bundle of the CA that signed the registry's certificate."),
    ]
    if password:
        options += [
            click.option("--username", "-u", help="Registry user (default: ~/.docker/config.json)."),
            click.option("--password-stdin", "registry_password_stdin", is_flag=True,
                         help="Read the registry password (or token) from stdin."),
        ]

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_remote(*args: Any, insecure: bool = False, ca_cert: str | None = None,
                        username: str | None = None, registry_password_stdin: bool = False,
                        **kwargs: Any) -> Any:
            if insecure and ca_cert:  # one would silently win over the other
                raise RegistryUsageError("--insecure and --ca-cert: give one (--insecure skips the "
                                         "verification --ca-cert is for)")
            credentials = credentials_from_options(username, registry_password_stdin)
            return command(*args, remote=Remote(insecure, ca_cert, credentials), **kwargs)

        decorated: Any = with_remote
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate
