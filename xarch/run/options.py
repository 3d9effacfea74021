"""What a build is given besides the recipe: build arguments, secrets, how much of a failed step to show.

- `--build-arg NAME=VALUE` overrides the default of the recipe's `args: {NAME: default}`, as
  Dockerfile's `ARG` and `docker buildx build --build-arg` do. Every step sees every argument as
  an environment variable, and its value is part of every step's cache key. A NAME the recipe
  does not declare is an error (buildx warns; a typo that silently builds the default is worse).
- `--secret id=NAME,src=FILE` / `id=NAME,env=VAR` (buildx's syntax, `type=file|env` and
  `source=` accepted; a bare `id=NAME` reads the environment variable NAME): a step that lists
  NAME in `secrets:` sees it read-only at /run/secrets/NAME. The value is read when the build
  starts and lives only in memory and in a RAM-backed file while the step runs; it is never part
  of a cache key (BuildKit's rule: change a secret and cached steps are NOT run again; use
  --no-cache or change an argument to force it), and xarch replaces it by `***` in every output
  line it shows. A step that copies it into its outputs publishes it; that is the step's doing.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from xarch.errors import InputError
from xarch.oci.tree import is_utf8

# A POSIX shell variable name (what `env` and /bin/sh pass on unchanged).
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A file name under /run/secrets: no '/', no leading dot (xarch's own files there start with one).
SECRET_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DEFAULT_LOG_LINES = 200
MAX_SECRET = 500 * 1024  # bytes; BuildKit's MaxSecretSize (500 KB)
# Secret lines shorter than this are not masked in output: a 1-character secret would mask
# every such character of the log and so tell it away anyway.
MIN_MASKED = 3


@dataclass(frozen=True)
class Secret:
    """One --secret: its id and where its value came from (never the value in repr or logs)."""

    id: str
    value: bytes = field(repr=False)
    origin: str  # "file /path" or "env VAR": what an error may name

    def masks(self) -> list[str]:
        """The strings to hide in output: the whole value and each of its lines (UTF-8, invalid
        bytes replaced, stripped), those of at least MIN_MASKED (3) characters, longest first."""
        text = self.value.decode("utf-8", "replace")
        candidates = {text.strip(), *(line.strip() for line in text.splitlines())}
        return sorted((c for c in candidates if len(c) >= MIN_MASKED), key=len, reverse=True)


def parse_build_arg(text: str) -> tuple[str, str]:
    """`NAME=VALUE` (VALUE may be empty and may hold '=') as (NAME, VALUE), as buildx's
    --build-arg; InputError (exit 2) for a missing '=', a NAME that is not a POSIX shell
    variable name, or a NUL byte in VALUE."""
    name, sep, value = text.partition("=")
    if not sep:
        raise InputError(f"--build-arg {text!r}: must be NAME=VALUE")
    if not ENV_NAME_RE.fullmatch(name):
        raise InputError(f"--build-arg {text!r}: {name!r} is not a variable name (letters, digits, _)")
    if "\x00" in value:
        raise InputError(f"--build-arg {name}: the value holds a NUL byte")
    if not is_utf8(value):  # the command line gives bytes that are not UTF-8 as surrogates
        raise InputError(f"--build-arg {name}: the value is not UTF-8 text (an image's config holds "
                         "UTF-8 only)")
    return name, value



def parse_secret(text: str, environ: dict[str, str] | None = None) -> Secret:
    """One --secret in buildx's CSV syntax; reads the value now (from ENVIRON, default
    os.environ, or a regular file of at most MAX_SECRET = 500 KiB, BuildKit's limit).
    InputError (exit 2) is one line naming the field, never the value."""
    environ = dict(os.environ) if environ is None else environ
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        # Neither here nor below is the text echoed: a mistyped --secret may be the value itself.
        raise InputError("--secret: not a comma-separated list of key=value "
                         "(id=NAME,src=FILE or id=NAME,env=VAR)") from None
    kind = secret_id = src = env = None
    for number, item in enumerate(fields, start=1):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InputError(f"--secret: field {number} is not key=value (its text is not shown: it may be "
                             "a secret); use id=NAME,src=FILE or id=NAME,env=VAR")
        if key == "type":
            if value not in ("file", "env"):
                raise InputError(f"--secret: type={value!r} is not file or env")
            kind = value
        elif key == "id":
            secret_id = value
        elif key in ("src", "source"):
            src = value
        elif key == "env":
            env = value
        else:
            raise InputError(f"--secret: unknown key {key!r} (id, src, env, type)")
    if kind == "env" and env is None:
        env, src = src, None
    if not secret_id:
        secret_id = env or (Path(src).name if src else None)  # buildx defaults the id to the source's name
    if not secret_id or not SECRET_ID_RE.fullmatch(secret_id):
        raise InputError(f"--secret: id {secret_id!r} must be letters, digits, '_', '.', '-' "
                         "(not starting with '.' or '-'), at most 128")
    if src is not None and env is not None:
        raise InputError(f"--secret id={secret_id}: give src or env, not both")
    if src is None and env is None:
        env = secret_id
    if env is not None:
        if not env:
            raise InputError(f"--secret id={secret_id}: env= names no variable")
        if env not in environ:
            raise InputError(f"--secret id={secret_id}: environment variable {env} is not set")
        return Secret(secret_id, environ[env].encode("utf-8", "surrogateescape"), f"env {env}")
    assert src is not None
    path = Path(src).expanduser()
    try:
        # Opened without blocking and checked before reading: a FIFO or a device would never end.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"--secret id={secret_id}: {src} is not a regular file")
            if info.st_size > MAX_SECRET:
                raise InputError(f"--secret id={secret_id}: {src} is {info.st_size} bytes, more than "
                                 f"{MAX_SECRET} (BuildKit's limit too)")
            data = handle.read(MAX_SECRET + 1)
    except OSError as error:
        raise InputError(f"--secret id={secret_id}: cannot read {src}: {error.strerror or error}") from None
    return Secret(secret_id, data, f"file {src}")


@dataclass(frozen=True)
class BuildOptions:
    """The step inputs a build got from its command line, checked against the recipe."""

    args: dict[str, str] = field(default_factory=dict)  # every declared arg, with its value
    secrets: dict[str, Secret] = field(default_factory=dict)
    log_lines: int = DEFAULT_LOG_LINES
    labels: dict[str, str] = field(default_factory=dict)  # --label: image config labels over the recipe's

    def masks(self) -> list[str]:
        """Every secret's masks (Secret.masks), without repeats, longest first, so that mask()
        hides a whole value before any shorter line of it. Raises nothing."""
        return sorted({m for s in self.secrets.values() for m in s.masks()}, key=len, reverse=True)


def resolve(loaded: object, build_args: tuple[str, ...] = (), secrets: tuple[str, ...] = (),
            log_lines: int = DEFAULT_LOG_LINES, environ: dict[str, str] | None = None) -> BuildOptions:
    """Check --build-arg and --secret against LOADED (a recipe.LoadedRecipe) before anything
    is fetched: an undeclared argument, a secret given twice, a step listing a secret that was
    not given, or a CA secret that holds no PEM certificate are one-line errors: InputError
    (exit 2) for the command line (also --log-lines < 1), RecipeError (exit 2, file:line:
    field) for a step's `secrets:`/`ca_certificates:` entry."""
    from xarch.recipe import LoadedRecipe

    assert isinstance(loaded, LoadedRecipe)
    declared = dict(loaded.recipe.args)
    values = dict(declared)
    for text in build_args:
        name, value = parse_build_arg(text)
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise InputError(f"--build-arg {name}: {loaded.path.name} declares no such argument "
                             f"(args: {known})")
        values[name] = value
    given: dict[str, Secret] = {}
    for text in secrets:
        secret = parse_secret(text, environ)
        if secret.id in given:
            raise InputError(f"--secret id={secret.id} is given twice")
        given[secret.id] = secret
    for stage_name, stage in loaded.recipe.stages.items():
        for index, step in enumerate(stage.steps):
            for kind in ("secrets", "ca_certificates"):
                for position, secret_id in enumerate(getattr(step, kind)):
                    loc = ("stages", stage_name, "steps", index, kind, position)
                    if secret_id not in given:
                        raise loaded.error(loc, f"secret {secret_id!r} is not given "
                                                f"(xarch build --secret id={secret_id},src=FILE)")
                    pem = b"-----BEGIN CERTIFICATE-----" in given[secret_id].value
                    if kind == "ca_certificates" and not pem:
                        raise loaded.error(loc, f"secret {secret_id!r} ({given[secret_id].origin}) holds no "
                                                "PEM certificate (-----BEGIN CERTIFICATE-----)")
    if log_lines < 1:
        raise InputError(f"--log-lines {log_lines}: must be 1 or more")
    return BuildOptions(values, given, log_lines)


def parse_labels(texts: tuple[str, ...]) -> dict[str, str]:
    """--label KEY=VALUE items as a mapping (a later KEY wins, as with docker build); InputError
    (exit 2) for a missing '=', an empty KEY, a control character (below 0x20, 0x7F) or bytes
    that are not UTF-8."""
    labels: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key + value):
            raise InputError(f"--label {text!r}: must be KEY=VALUE, without control characters")
        if not is_utf8(text):
            raise InputError(f"--label {text!r}: is not UTF-8 text (an image's config holds UTF-8 only)")
        labels[key] = value
    return labels


def mask(line: str, masks: list[str]) -> str:
    """LINE with every secret string in MASKS (longest first) replaced by ***; raises nothing."""
    for secret in masks:
        if secret in line:
            line = line.replace(secret, "***")
    return line
