"""xarch.trace: the paths each platform's image used, written by `xarch trace`, read by builds.

A lock-like file beside the recipe, committed by the user and reviewed in diffs: one sorted
list of absolute image paths per platform. A build of a recipe with `trace:` keeps only these
paths (plus `trace.keep` and what the config needs); the file's bytes are an input of the
image's cache key, so builds stay reproducible without tracing again.

    # Written by `xarch trace`; review changes like a lock.
    version: 1
    platforms:
      amd64:
      - /etc/nginx/nginx.conf
      - /usr/sbin/nginx
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from xarch.errors import InputError
from xarch.oci.atomic import atomic_file
from xarch.smallfile import read_regular

FILE_NAME = "xarch.trace"
VERSION = 1
HEADER = "# Written by `xarch trace`; review changes like a lock.\n"
MAX_PATH = 4095  # PATH_MAX less the NUL
# A record of every path of a large image is a few MB; past this it is not one `xarch trace` wrote.
MAX_BYTES = 64 * 1024 * 1024


class TraceFileError(InputError):
    """xarch.trace is missing, unreadable or malformed: one line naming the file and field (exit 2)."""


def _image_path(value: str) -> str:
    if "\x00" in value or len(value.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise ValueError(f"{value[:60]!r}: a NUL byte or longer than {MAX_PATH} bytes")
    if not value.startswith("/") or posixpath.normpath(value) != value or value.startswith("//"):
        raise ValueError(f"{value[:200]!r} is not an absolute, normalized image path")
    return value


def _platform_name(value: str) -> str:
    from xarch import platforms as platform_data

    try:
        known = platform_data.get(value).name
    except platform_data.UnknownPlatform:
        known = None
    if known != value:
        raise ValueError(f"{value[:60]!r} is not a platform name xarch writes (amd64, arm64, arm/v7, …)")
    return value


# Each path is checked on its own, so an error's location names its platform and index.
ImagePath = Annotated[str, AfterValidator(_image_path)]
PlatformName = Annotated[str, AfterValidator(_platform_name)]


class _TraceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: int
    platforms: dict[PlatformName, list[ImagePath]] = Field(default_factory=dict)


@dataclass(frozen=True)
class TraceRecord:
    """Platform name → the sorted absolute image paths its image used."""

    platforms: dict[str, tuple[str, ...]]

    def dumps(self) -> str:
        """xarch.trace's text: the header comment, then YAML with each platform's paths sorted."""
        data = {"version": VERSION, "platforms": {name: sorted(paths) for name, paths in
                                                   sorted(self.platforms.items())}}
        return HEADER + yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=1000,
                                       allow_unicode=True)

    def dump(self, path: Path) -> None:
        """Write atomically: a build reads the old record or the new one, never half of one."""
        with atomic_file(path) as handle:
            handle.write(self.dumps().encode("utf-8", "surrogateescape"))

    def paths(self, platform: str, where: Path) -> tuple[str, ...]:
        """PLATFORM's recorded absolute image paths; TraceFileError (exit 2) naming WHERE (the file) when
        the platform was never traced.
        """
        if platform not in self.platforms:
            raise TraceFileError(f"{where}: platforms.{platform}: not traced; run `xarch trace --platform "
                                 f"{platform}`")
        return self.platforms[platform]


def trace_file(recipe_path: Path) -> Path:
    """xarch.trace beside RECIPE_PATH: the one trace record of a recipe."""
    return recipe_path.parent / FILE_NAME


def read_bytes(path: Path) -> bytes:
    """PATH's bytes, when it is (or links to) a regular file of at most MAX_BYTES (xarch.smallfile).
    Raises FileNotFoundError when PATH does not exist, TraceFileError (exit 2) otherwise."""
    return read_regular(path, MAX_BYTES, TraceFileError, "run `xarch trace` to write it again")


def _parse(text: str) -> object:
    """YAML TEXT with libyaml when PyYAML has it (a record of 400,000 paths: 5 s, not 30 s);
    libyaml refuses the "\\uDCxx" escapes dump writes for a non-UTF-8 byte, PyYAML reads them."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            pass  # PyYAML's own loader reads those escapes, and words any real error the same way
    return yaml.safe_load(text)


def load(path: Path) -> TraceRecord:
    """Read and check PATH. Raises TraceFileError (one line naming the file and field)."""
    try:
        text = read_bytes(path).decode("utf-8", "surrogateescape")
        raw = _parse(text)
    except FileNotFoundError:
        raise TraceFileError(f"{path} does not exist; the recipe has trace:, run `xarch trace`") from None
    except (OSError, RecursionError, yaml.YAMLError) as error:
        detail = " ".join(str(error).replace(' in "<unicode string>",', "").split())
        raise TraceFileError(f"{path}: cannot read: {detail}") from None
    if not isinstance(raw, dict):
        raise TraceFileError(f"{path}: not a mapping; run `xarch trace` again")
    if raw.get("version") != VERSION:
        raise TraceFileError(f"{path}: version: {raw.get('version')!r}, this xarch reads {VERSION}")
    try:
        data = _TraceFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        # A bad key's location ends in "[key]"; the key itself is in the message.
        where = ".".join(str(part) for part in first["loc"] if part != "[key]")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise TraceFileError(f"{path}: {where}: {message}") from None
    return TraceRecord({name: tuple(paths) for name, paths in data.platforms.items()})
