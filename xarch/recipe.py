"""The recipe (xarch.yaml): schema, defaults, and validation errors with line numbers.

Every error names the file, the line and the field, e.g.
    xarch.yaml:14: files[1].mode: must be a quoted octal string such as "0755"
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,  # numbers only: pydantic's lax int takes true as 1 and "12" as 12
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xarch import platforms as platform_data
from xarch.errors import RecipeError
from xarch.sources.debian.config import DebianSource, PackageSelection
from xarch.sources.python.config import PythonSpec
from xarch.yamlpos import PositionedYaml, YamlPositionError
from xarch.yamlpos import load as load_yaml

DEFAULT_FILE = "xarch.yaml"
# The last second both places an epoch goes can hold: OCI's RFC 3339 `created` (a four-digit
# year, to 9999) and every layer entry's mtime, whose ustar field holds 11 octal digits (to 2242).
MAX_EPOCH = 8**11 - 1
NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _mode(value: Any) -> int:
    # YAML 1.1 reads 0755 as the number 493, so a number here is almost surely a mistake.
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3,4}", value):
        raise ValueError('must be a quoted octal string such as "0755" (YAML reads 0755 as a number)')
    return int(value, 8)


# uid_t and gid_t are 32-bit on Linux and (uid_t)-1 means "no change" to chown(2), so the
# largest id a file can carry is 2**32 - 2 (tar's PAX headers hold any number; GNU tar and
# runtimes then refuse what does not fit).
MAX_ID = 2**32 - 2
# Accounts are stricter: passwd/group ids above 2**31 - 1 break tools that read them signed.
MAX_ACCOUNT_ID = 2**31 - 1


def _id(text: str) -> int:
    number = int(text)
    if number > MAX_ID:
        raise ValueError(f"id {number} is out of range 0..{MAX_ID} (Linux's 32-bit uid_t/gid_t)")
    return number


def _owner(value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return _id(str(value)), _id(str(value))
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(:[0-9]+)?", value):
        uid, _, gid = value.partition(":")
        return _id(uid), _id(gid or uid)
    raise ValueError('must be "UID:GID" with numbers, e.g. "1000:1000"')


def _no_control(value: str, what: str = "") -> str:
    # A NUL cannot pass execve(2), a path or a tar header; other control characters make
    # names that no shell or runtime can show or type.
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise ValueError(f"{what or 'must not contain'} a control character ({bad!r})")
    return value


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain a NUL byte")
    return value


def _destination(value: Any) -> str:
    """An absolute image path; "/" (a folder copied as the whole root) is allowed."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute path in the image, e.g. /usr/bin/app")
    if "\x00" in value:
        raise ValueError("must not contain a NUL byte")
    if ".." in value.split("/"):
        raise ValueError("must not contain '..'")
    _fits_linux([part for part in value.split("/") if part not in ("", ".")])
    return value


def is_root(path: str) -> bool:
    """Whether the image path PATH ("/", "//", "/.") names the image root itself."""
    return not [part for part in path.split("/") if part not in ("", ".")]


def _image_path(value: Any) -> str:
    """An absolute image path below "/": the root has no entry in a layer to hold a file,
    link or folder metadata."""
    _destination(value)
    if is_root(value):
        raise ValueError(f"{value!r} is the image root itself; name a path below /")
    return value


def _fits_linux(parts: list[str]) -> None:
    # Linux's NAME_MAX (255 bytes a name) and PATH_MAX (4096 bytes with the NUL): a layer
    # holds longer names (PAX), but no runtime can then create them.
    long_part = next((p for p in parts if len(p.encode()) > 255), None)
    if long_part is not None:
        raise ValueError(f"a name of {len(long_part.encode())} bytes is longer than Linux's 255 (NAME_MAX)")
    if len("/".join(parts).encode()) + 1 > 4095:
        raise ValueError("is longer than Linux's 4095 bytes (PATH_MAX)")


def _image_glob(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute glob of image paths, e.g. /opt/qemu/**")
    if "\x00" in value or ".." in value.split("/"):
        raise ValueError("must not contain a NUL byte or '..'")
    return value


# Signal names the Linux container runtimes know (moby/sys/signal's signal_linux.go, which
# containerd and Docker use; "SIG" optional, any case), SIGRTMIN+n / SIGRTMAX-n, or 1..64.
SIGNALS = frozenset("""
    ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV STKFLT
    STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ RTMIN RTMAX
    """.split())
RT_SIGNALS = 30  # SIGRTMIN (34) .. SIGRTMAX (64) on Linux


def _stop_signal(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return value
    if value.isascii() and value.isdigit():
        if not 1 <= int(value) <= 64:
            raise ValueError(f"signal {value} is out of range 1..64")
        return value
    name = value.upper().removeprefix("SIG")
    match = re.fullmatch(r"RTMIN\+([0-9]+)|RTMAX-([0-9]+)", name)
    if name in SIGNALS or (match and 1 <= int(match.group(1) or match.group(2)) <= RT_SIGNALS):
        return value
    raise ValueError(f"{value!r} is not a signal Linux runtimes know (e.g. SIGTERM, SIGRTMIN+3, 15)")


def _user(value: Any) -> Any:
    """USER, UID, USER:GROUP or UID:GID, as Docker and runc take it."""
    if not isinstance(value, str):
        return value
    if not re.fullmatch(r"[^:\s]+(:[^:\s]+)?", value):
        raise ValueError('must be USER, UID, "USER:GROUP" or "UID:GID", without spaces')
    _no_control(value, "must not contain")
    for part in value.split(":"):
        if part.isascii() and part.isdigit():
            _id(part)
    return value


def _absolute(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("/"):
        raise ValueError("must be an absolute path, e.g. /srv")
    return _no_nul(value)


def _volume(value: Any) -> Any:
    _absolute(value)
    if isinstance(value, str) and is_root(value):
        raise ValueError("a volume cannot be the image root /; Docker and runc refuse to mount there")
    return value


def _env_key(value: Any) -> Any:
    if isinstance(value, str) and (not value or "=" in value):
        raise ValueError(f"{value!r} is not a variable name (empty, or contains '=')")
    return _no_nul(value)


def _key(value: Any) -> Any:
    if isinstance(value, str):
        if not value:
            raise ValueError("a key must not be empty")
        _no_control(value, "a key must not contain")
    return value


Mode = Annotated[int, BeforeValidator(_mode)]
Owner = Annotated[tuple[int, int], BeforeValidator(_owner)]
ImagePath = Annotated[str, BeforeValidator(_image_path)]
Destination = Annotated[str, BeforeValidator(_destination)]  # files.dst, copy.dst: a folder may go to /
ImageGlob = Annotated[str, BeforeValidator(_image_glob)]
Text = Annotated[str, BeforeValidator(_no_nul)]  # what reaches argv, env or JSON a runtime reads
Key = Annotated[str, BeforeValidator(_key)]  # label and annotation keys
EnvKey = Annotated[str, BeforeValidator(_env_key)]


class Strict(BaseModel):
    """Base of every recipe model: unknown keys are refused (a typo is an error, not ignored), values
    frozen.
    """

    # defer_build: a model's validator is built when first used; a recipe kept by
    # xarch.recipecache is never validated again, so its validators are never built.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ImageConfigSpec(Strict):
    """`config:`, the image's runtime config (OCI image spec, config.md `config`): entrypoint, cmd,
    env, user (USER[:GROUP] or UID[:GID]), workdir (absolute), exposed_ports (PORT[/tcp|udp|sctp],
    stored as PORT/PROTO), volumes, labels, stop_signal; `from: STAGE` starts from a Dockerfile stage's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # A dockerfile: stage whose final image config (USER, ENV, CMD …) is the base of this one.
    from_: str | None = Field(default=None, alias="from")
    entrypoint: list[Text] | None = None
    cmd: list[Text] | None = None
    env: dict[EnvKey, Text] = Field(default_factory=dict)
    user: Annotated[str, BeforeValidator(_user)] | None = None
    workdir: Annotated[str, BeforeValidator(_absolute)] | None = None
    exposed_ports: list[str] = Field(default_factory=list)
    volumes: list[Annotated[str, BeforeValidator(_volume)]] = Field(default_factory=list)
    labels: dict[Key, Text] = Field(default_factory=dict)
    stop_signal: Annotated[str, BeforeValidator(_stop_signal)] | None = None

    @field_validator("exposed_ports")
    @classmethod
    def _ports(cls, ports: list[str]) -> list[str]:
        for port in ports:
            match = re.fullmatch(r"([0-9]{1,5})(/(tcp|udp|sctp))?", str(port))
            if not match:
                raise ValueError(f"{port!r} is not PORT or PORT/tcp|udp|sctp")
            if not 1 <= int(match.group(1)) <= 65535:
                raise ValueError(f"port {match.group(1)} is out of range 1..65535")
        return [p if "/" in str(p) else f"{p}/tcp" for p in ports]

    @field_validator("exposed_ports", mode="before")
    @classmethod
    def _ports_as_text(cls, ports: Any) -> Any:
        return [str(p) for p in ports] if isinstance(ports, list) else ports


class AnnotationsSpec(Strict):
    """`annotations: {index: {...}, manifest: {...}}`: {key: value} added to the image index and to
    every platform manifest (OCI image spec, annotations.md).
    """

    index: dict[Key, Text] = Field(default_factory=dict)
    manifest: dict[Key, Text] = Field(default_factory=dict)


def canonical_platforms(names: list[str]) -> list[str]:
    """NAMES as platforms/*.yaml name them ("linux/arm64" -> "arm64"), in the same order;
    UnknownPlatform (exit 2) for a name with no file.
    """
    return [platform_data.get(name).name for name in names]


class FileSpec(Strict):
    """A file or a folder of the source tree copied into the image."""

    src: Text
    dst: Destination
    mode: Mode | None = None
    owner: Owner = (0, 0)
    platforms: list[str] | None = None  # only for these platforms

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else canonical_platforms(names)


class DirectorySpec(Strict):
    """`directories:` entry: an empty folder at PATH with MODE (default 0755) and OWNER (uid, gid)."""

    path: ImagePath
    mode: Mode = 0o755
    owner: Owner = (0, 0)


class SymlinkSpec(Strict):
    """`symlinks:` entry: a symlink at PATH pointing at TARGET (1-4095 bytes, as PATH_MAX allows), owned by
    OWNER.
    """

    path: ImagePath
    target: Text = Field(min_length=1, max_length=4095)  # a symlink holds at most PATH_MAX - 1 bytes
    owner: Owner = (0, 0)


class LayerSpec(Strict):
    """`layers:` entry: a layer NAME (its history reads `xarch layer NAME`) and image globs
    PATHS; each path goes to the first layer whose globs match it.
    """

    name: str
    paths: list[str]


class CompressionSpec(Strict):
    """`compression: {algorithm: gzip|zstd, level: N}`: gzip (libdeflate) 1–12, zstd 1–19; default gzip 6."""

    algorithm: Literal["gzip", "zstd"] = "gzip"
    level: StrictInt = Field(default=6, ge=1, le=19)

    @field_validator("level")
    @classmethod
    def _level_in_range(cls, level: int, info: ValidationInfo) -> int:
        if info.data.get("algorithm", "gzip") == "gzip" and level > 12:
            raise ValueError(f"gzip levels are 1..12 (zstd: 1..19), not {level}")
        return level


def _package_selection(value: Any) -> Any:
    """`packages: [a, b]` is short for `packages: {install: [a, b]}`."""
    if isinstance(value, list):
        return {"packages": value}
    if isinstance(value, dict) and "install" in value:
        value = dict(value)
        value["packages"] = value.pop("install")
    return value


Packages = Annotated[PackageSelection, BeforeValidator(_package_selection)]


class SourcesSpec(Strict):
    """`sources: {debian: ...}`: the Debian archives packages come from (one mapping or a list)."""

    debian: list[DebianSource] = Field(default_factory=list)

    @field_validator("debian", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


def _account_name(value: Any) -> Any:
    # What useradd(8) and groupadd(8) accept by default, at most 32 characters.
    if isinstance(value, str) and not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", value):
        raise ValueError(f"{value!r} is not an account name: a-z or _, then a-z 0-9 _ . -, at most 32")
    return value


def _passwd_field(value: Any) -> Any:
    # One line of /etc/passwd or /etc/group, ':'-separated: neither may appear in a field.
    if isinstance(value, str) and (":" in value or any(ord(c) < 0x20 for c in value)):
        raise ValueError("must not contain ':' or a control character (it is a field of /etc/passwd)")
    return value


PasswdField = Annotated[str, BeforeValidator(_passwd_field)]
AccountName = Annotated[str, BeforeValidator(_account_name)]


class UserSpec(Strict):
    """`accounts.users:` entry: a line of /etc/passwd (and a locked /etc/shadow entry). UID and GID
    0..2^31-1 (GID defaults to UID); home, shell and gecos hold no ':' or control characters.
    """

    name: AccountName
    uid: StrictInt = Field(ge=0, le=MAX_ACCOUNT_ID)
    gid: StrictInt | None = Field(default=None, ge=0, le=MAX_ACCOUNT_ID)  # default: the same number as uid
    home: PasswdField = "/nonexistent"
    shell: PasswdField = "/usr/sbin/nologin"
    gecos: PasswdField = ""


class GroupSpec(Strict):
    """`accounts.groups:` entry: a line of /etc/group: NAME, GID (0..2^31-1) and member user names."""

    name: AccountName
    gid: StrictInt = Field(ge=0, le=MAX_ACCOUNT_ID)
    members: list[AccountName] = Field(default_factory=list)


class AccountsSpec(Strict):
    """`accounts:`: users and groups added to the image's /etc/passwd, /etc/group and /etc/shadow."""

    users: list[UserSpec] = Field(default_factory=list)
    groups: list[GroupSpec] = Field(default_factory=list)


class CopySpec(Strict):
    """Take a path out of a stage: `from: build:/out/app`. Stages never ship otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from")
    dst: Destination
    mode: Mode | None = None
    owner: Owner | None = None

    @field_validator("source")
    @classmethod
    def _stage_path(cls, value: str) -> str:
        stage, sep, path = value.partition(":")
        if not sep or not stage or not path.startswith("/"):
            raise ValueError("must be STAGE:/absolute/path, e.g. build:/out/app")
        if ".." in path.split("/"):
            # A stage path is read inside the stage's root: ".." would climb out of it.
            raise ValueError(f"{path!r} has a '..' part; give the path inside the stage without it")
        if "\x00" in path:
            raise ValueError("the path holds a NUL byte")
        return value

    @property
    def stage(self) -> str:
        return self.source.partition(":")[0]

    @property
    def path(self) -> str:
        return self.source.partition(":")[2]


# Variables a step gets from xarch (xarch.run.steps.fixed_env): facts, not settings.
RESERVED_ENV = ("TARGETARCH", "TARGETPLATFORM", "TARGETVARIANT", "TARGETOS", "SOURCE_DATE_EPOCH")


def _step_env_name(value: Any) -> Any:
    # A POSIX shell variable name: /bin/sh drops or mangles anything else it is given.
    if isinstance(value, str):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a variable name (letters, digits and _, not first a digit)")
        if value in RESERVED_ENV:
            raise ValueError(f"{value} is set by xarch for every step and cannot be changed")
    return value


def _secret_id(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", value):
        raise ValueError(f"{value!r} is not a secret id (letters, digits, '_', '.', '-', as --secret id=…)")
    return value


StepEnvName = Annotated[str, BeforeValidator(_step_env_name)]
SecretId = Annotated[str, BeforeValidator(_secret_id)]


class StepModel(Strict):
    """One `steps:` entry of a stage: the shell command RUN, NETWORK access (default off), ENV
    ({POSIX variable name: value}), SECRETS mounted at /run/secrets/ID and extra CA_CERTIFICATES.
    """

    run: Text
    network: bool = False
    env: dict[StepEnvName, Text] = Field(default_factory=dict)  # also sees every `args:` entry
    secrets: list[SecretId] = Field(default_factory=list)  # mounted at /run/secrets/ID (xarch.run.options)
    ca_certificates: list[SecretId] = Field(default_factory=list)  # extra trusted CAs (docs/stages.md)


def _relative_glob(value: Any) -> Any:
    if isinstance(value, str):
        _no_nul(value)
        if ".." in value.lstrip("!").split("/"):
            raise ValueError(f"{value!r}: an input glob stays inside the stage's source folder (no '..')")
        if not [part for part in value.strip().removeprefix("!").strip().split("/") if part not in ("", ".")]:
            # `/`, `!`, `` and `./` name no path: such a stage silently got an empty /src.
            raise ValueError(f"{value!r}: an input glob names no path (all of the folder is `**`)")
    return value


class StageSpec(Strict):
    """A build stage: packages, files and steps, or a Dockerfile built by buildx."""

    packages: Packages | None = None
    files: list[FileSpec] = Field(default_factory=list)
    copy_: list[CopySpec] = Field(default_factory=list, alias="copy")
    steps: list[StepModel] = Field(default_factory=list)
    cross: bool = False  # the steps can cross-build (use $CC, $CXX, $PKG_CONFIG …; see xarch/run/cross.py)
    strategy: Literal["auto", "native", "cross", "emulate"] = "auto"
    source: str = "."  # the recipe folder (or a part of it) that steps see at /src
    # Globs (.xarchignore syntax) relative to source: only these reach /src and the cache key.
    inputs: list[Annotated[str, BeforeValidator(_relative_glob)]] | None = None
    dockerfile: str | None = None
    context: str | None = None
    build_args: dict[EnvKey, Text] = Field(default_factory=dict)
    target: str | None = None
    builder: str | None = None
    # Python dependencies locked per platform and installed into the stage root (docs/python.md).
    python: PythonSpec | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> StageSpec:
        if self.dockerfile and (self.steps or self.packages or self.files or self.copy_
                                or self.inputs is not None or self.python is not None):
            raise ValueError("a stage with a dockerfile takes no packages, files, copy, inputs, python "
                             "or steps")
        return self


class TraceSpec(Strict):
    """`xarch trace`: how to exercise the image, and what to keep whatever the trace sees.

    RUN is the command (default: the config's entrypoint + cmd); PROBE a host command run in
    the image's network namespace until it succeeds (e.g. an HTTP request to its port);
    TIMEOUT the seconds allowed for either; KEEP image globs always kept.
    """

    run: list[Text] | None = Field(default=None, min_length=1)
    probe: list[Text] | None = Field(default=None, min_length=1)
    timeout: StrictInt = Field(default=30, ge=1, le=3600)
    keep: list[ImageGlob] = Field(default_factory=list)


class Recipe(Strict):
    """The whole recipe, xarch.yaml (README.md shows each key): name (an OCI distribution repository
    name, at most 255 characters), tag, platforms (canonical names, no repeats), epoch (seconds
    since 1970, 0..8^11-1: what ustar and RFC 3339 can hold), and what the image is made of.
    """

    name: str
    tag: str = "latest"
    platforms: list[str] = Field(min_length=1)
    epoch: StrictInt | None = Field(default=None, ge=0, le=MAX_EPOCH)
    config: ImageConfigSpec = Field(default_factory=ImageConfigSpec)
    annotations: AnnotationsSpec = Field(default_factory=AnnotationsSpec)
    files: list[FileSpec] = Field(default_factory=list)
    directories: list[DirectorySpec] = Field(default_factory=list)
    symlinks: list[SymlinkSpec] = Field(default_factory=list)
    layers: list[LayerSpec] = Field(default_factory=list)
    compression: CompressionSpec = Field(default_factory=CompressionSpec)
    sources: SourcesSpec = Field(default_factory=SourcesSpec)
    packages: Packages | None = None
    accounts: AccountsSpec = Field(default_factory=AccountsSpec)
    stages: dict[str, StageSpec] = Field(default_factory=dict)
    copy_: list[CopySpec] = Field(default_factory=list, alias="copy")
    # Image paths (globs, as in layers) whose ELF files may be code for another machine.
    foreign_code: list[ImageGlob] = Field(default_factory=list)
    # Minimal by tracing: keep only what xarch.trace recorded (see xarch/trace/).
    trace: TraceSpec | None = None
    args: dict[StepEnvName, Text] = Field(default_factory=dict)  # build arguments: --build-arg overrides
    # Python dependencies from a package index, locked per platform (docs/python.md).
    python: PythonSpec | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        # 255: what registries and clients allow for host + "/" + name (OCI distribution spec)
        if not NAME_RE.fullmatch(name) or len(name) > 255:
            raise ValueError("must be a lower-case image name such as 'hello' or 'team/hello', "
                             "at most 255 characters")
        return name

    @field_validator("tag")
    @classmethod
    def _tag(cls, tag: str) -> str:
        if not TAG_RE.fullmatch(tag):
            raise ValueError("must be a valid image tag")
        return tag

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, names: list[str]) -> list[str]:
        canonical = canonical_platforms(names)
        if len(set(canonical)) != len(canonical):
            raise ValueError("names a platform twice")
        return canonical


class LoadedRecipe:
    """A validated recipe, with where it came from (for paths and error lines)."""

    def __init__(self, path: Path, recipe: Recipe, positions: PositionedYaml,
                 unkept: tuple[Path, bytes] | None = None) -> None:
        self.path = path
        self.recipe = recipe
        self.positions = positions
        self._unkept = unkept  # (cache entry, its bytes) of a recipe validated now: see keep

    def keep(self) -> None:
        """Keep the recipe, as validated, in the cache (xarch.recipecache), when it was validated
        by this load. A build calls it once it has built: a command that fails early, or that
        only reads the recipe, leaves the cache as it was."""
        if self._unkept is not None:
            from xarch import recipecache

            recipecache.write(*self._unkept)
            self._unkept = None

    @property
    def folder(self) -> Path:
        return self.path.parent

    def as_json(self) -> Any:
        """The recipe as JSON data, keys as the YAML spells them: what pydantic's
        `model_dump(mode="json", by_alias=True)` gives, without building its serializers when
        xarch.recipecache.plain knows every value (it does for every recipe it keeps)."""
        from xarch.recipecache import Unkept, plain

        try:
            return plain(self.recipe)
        except Unkept:
            return self.recipe.model_dump(mode="json", by_alias=True)

    def error(self, loc: tuple[str | int, ...], message: str) -> RecipeError:
        """A RecipeError (exit 2) `FILE:LINE: FIELD: MESSAGE` for the field at LOC (keys and indexes)."""
        return RecipeError(_format(self.path, self.positions.line_of(loc), loc, message))


PLAIN_KEY = re.compile(r"[\w.\-/:=+@]+")


def _format_loc(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not PLAIN_KEY.fullmatch(str(part)):
            text += f"[{json.dumps(str(part))}]"  # an empty key, or one with spaces or control characters
        else:
            text += f".{part}" if text else str(part)
    return text


def one_line(text: str) -> str:
    """TEXT with every character str.splitlines() breaks at escaped: an error stays one line."""
    return "".join(repr(c)[1:-1] if c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029" else c for c in text)


def _format(path: Path, line: int | None, loc: tuple[str | int, ...], message: str) -> str:
    where = f"{path}:{line}" if line else str(path)
    field = _format_loc(loc)
    return one_line(f"{where}: {field}: {message}" if field else f"{where}: {message}")


format_loc = _format_loc  # "files[0].mode" for ("files", 0, "mode")
format_error = _format  # "xarch.yaml:12: files[0].mode: message"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names (as the YAML spells them) of the model holding LOC's last part, or []."""
    import typing

    def unwrap(kind: Any) -> Any:
        while True:
            if getattr(kind, "__metadata__", None) is not None:  # Annotated[X, …] → X
                kind = kind.__origin__
                continue
            origin = getattr(kind, "__origin__", None)
            args = [a for a in getattr(kind, "__args__", ()) if a is not type(None)]
            if not isinstance(kind, type) and origin in (None, typing.Union) and len(args) == 1:
                kind = args[0]  # X | None → X
                continue
            return kind

    model: Any = Recipe
    for part in loc[:-1]:
        model = unwrap(model)
        if isinstance(model, type) and issubclass(model, BaseModel):
            by_name = {f.alias or n: f for n, f in model.model_fields.items()}
            if part not in by_name:
                return []
            model = by_name[part].annotation
        else:
            args = getattr(model, "__args__", ())
            model = args[-1] if args else None  # list[X] → X, dict[K, V] → V
    model = unwrap(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _clean_message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        fields = _fields_at(tuple(error["loc"]))
        return f"unknown field (fields: {', '.join(fields)})" if fields else "unknown field"
    if error["type"] == "missing":
        return "is required"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        # Pydantic's "a valid dictionary or instance of ImageConfigSpec" names a class of ours.
        given = error.get("input")
        return "should be a mapping of fields" + ("" if given is None else f", not {given!r}")
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def load(path: Path | str) -> LoadedRecipe:
    """Read and validate the recipe at PATH; RecipeError names file, line and field."""
    path = Path(path)
    if path.is_dir():
        path = path / DEFAULT_FILE
    if not path.is_file():
        # A FIFO, socket or device is named as what it is: "no such file" would send the user looking.
        what = "no such recipe file" if not path.exists() else "the recipe is not a regular file"
        raise RecipeError(f"{path}: {what}")
    try:
        positions = load_yaml(path)
    except YamlPositionError as error:
        where = ":".join(str(part) for part in (path, error.line, error.column) if part)
        raise RecipeError(one_line(f"{where}: {error.message}")) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: cannot read: {error}") from None
    if not isinstance(positions.data, dict):
        raise RecipeError(f"{path}: the recipe must be a mapping of fields (name, platforms, …)")
    bad = _unencodable(positions.data)
    if bad is not None:
        # YAML's "\udcff" escape makes a lone surrogate: no file, tar header or JSON can hold it.
        message = "not valid Unicode text (a lone surrogate)"
        raise RecipeError(_format(path, positions.line_of(bad), bad, message))
    recipe, unkept = _validated(positions, path)
    loaded = LoadedRecipe(path, recipe, positions, unkept)
    for source in recipe.sources.debian:
        if not source.keyring.is_absolute():
            source.keyring = loaded.folder / source.keyring  # relative to the recipe, not the cwd
    _check_file_platforms(loaded)
    _check_unique_paths(loaded)
    _check_stages(loaded)
    return loaded


def _validated(positions: PositionedYaml, path: Path) -> tuple[Recipe, tuple[Path, bytes] | None]:
    """The Recipe of POSITIONS (the file at PATH), validated, or as validated before
    (xarch.recipecache); with the cache entry to keep it under, and its bytes, when validated now
    (taken before load changes the recipe: a keyring made the folder's). RecipeError naming
    file, line and field."""
    from xarch import recipecache
    from xarch.cachedir import default_root

    entry = None
    if positions.sha256:  # the bytes the data was parsed from are known: the cache may answer
        entry = recipecache.entry_path(default_root(), recipecache.cache_key(positions.sha256))
        kept = recipecache.get(entry, Recipe)
        if kept is not None:
            return kept, None
    try:
        recipe = Recipe.model_validate(positions.data)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(part for part in first["loc"] if not (isinstance(part, str) and "[" in part))
        # Pydantic adds the type name of a union branch to loc; drop such entries.
        loc = _strip_union_branches(loc, positions)
        raise RecipeError(_format(path, positions.line_of(loc), loc, _clean_message(first))) from None
    data = recipecache.entry_bytes(recipe) if entry is not None else None
    return recipe, (entry, data) if entry is not None and data is not None else None


def _unencodable(data: Any) -> tuple[str | int, ...] | None:
    """The location of the first key or string in DATA that UTF-8 cannot encode, else None."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return loc
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append(((*loc, str(key)), key))
                stack.append(((*loc, str(key)), item))
        elif isinstance(value, list):
            stack += [((*loc, index), item) for index, item in enumerate(value)]
    return None


def _strip_union_branches(loc: tuple[Any, ...], positions: PositionedYaml) -> tuple[Any, ...]:
    kept: list[Any] = []
    data: Any = positions.data
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        elif kept and isinstance(part, str) and not isinstance(data, (dict, list)):
            continue  # a type name pydantic added, not a field of the document
        kept.append(part)
    return tuple(kept)


def _check_file_platforms(loaded: LoadedRecipe) -> None:
    built = loaded.recipe.platforms
    for index, spec in enumerate(loaded.recipe.files):
        for name in spec.platforms or []:
            if name not in built:
                raise loaded.error(("files", index, "platforms"),
                                   f"{name} is not among the recipe's platforms ({', '.join(built)})")


def _check_stages(loaded: LoadedRecipe) -> None:
    """Packages need a Debian source; copies name existing stages; stages form no cycle."""
    recipe = loaded.recipe
    if not recipe.sources.debian:
        if recipe.packages is not None:
            raise loaded.error(("packages",), "packages need an archive: add sources.debian")
        for name, stage in recipe.stages.items():
            if stage.packages is not None:
                message = "packages need an archive: add sources.debian"
                raise loaded.error(("stages", name, "packages"), message)
            if (stage.cross or stage.strategy == "cross") and stage.steps:
                message = ("a cross stage runs in a root of locked Debian packages (the cross toolchain): "
                           "add sources.debian")
                raise loaded.error(("stages", name, "cross" if stage.cross else "strategy"), message)
    for name, stage in recipe.stages.items():
        if stage.python is not None and (stage.cross or stage.strategy == "cross"):
            # A cross stage's python is the build machine's; its wheels are locked for the target.
            message = ("a cross stage runs the build machine's python, and python: wheels are the "
                       "target's: use strategy native or emulate (cross: false) for this stage")
            raise loaded.error(("stages", name, "python"), message)
    copies: list[tuple[tuple[str | int, ...], CopySpec]] = [
        (("copy", i, "from"), c) for i, c in enumerate(recipe.copy_)
    ]
    for name, stage in recipe.stages.items():
        if name == "image" or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            message = "a stage name is lower-case letters, digits, - and _, and not 'image'"
            raise loaded.error(("stages", name), message)
        copies += [(("stages", name, "copy", i, "from"), c) for i, c in enumerate(stage.copy_)]
    for loc, copy in copies:
        if copy.stage not in recipe.stages:
            known = ", ".join(recipe.stages) or "none"
            raise loaded.error(loc, f"no stage named {copy.stage!r} (stages: {known})")
    for name in recipe.stages:
        stage_order(recipe, name, loaded)
    source = recipe.config.from_
    if source is not None and (source not in recipe.stages or not recipe.stages[source].dockerfile):
        dockerfiles = ", ".join(n for n, s in recipe.stages.items() if s.dockerfile) or "none"
        message = f"{source!r} is not a dockerfile: stage (those: {dockerfiles})"
        raise loaded.error(("config", "from"), message)


def stage_order(recipe: Recipe, name: str, loaded: LoadedRecipe | None = None,
                visiting: tuple[str, ...] = ()) -> list[str]:
    """NAME and the stages it copies from, dependencies first.

    A cycle of `copy: from:` raises RecipeError (exit 2), naming the stage's line when LOADED is given.
    """
    if name in visiting:
        cycle = " → ".join((*visiting, name))
        message = f"stages copy from each other in a cycle: {cycle}"
        raise loaded.error(("stages", name), message) if loaded else RecipeError(message)
    order: list[str] = []
    for copy in recipe.stages[name].copy_:
        for dependency in stage_order(recipe, copy.stage, loaded, (*visiting, name)):
            if dependency not in order:
                order.append(dependency)
    order.append(name)
    return order


def _check_unique_paths(loaded: LoadedRecipe) -> None:
    """Two items that write the same image path is an error, not a silent override."""
    seen: dict[tuple[str, str], tuple[str | int, ...]] = {}
    recipe = loaded.recipe
    items: list[tuple[tuple[str | int, ...], str, list[str] | None]] = []
    items += [(("files", i, "dst"), f.dst, f.platforms) for i, f in enumerate(recipe.files)]
    items += [(("directories", i, "path"), d.path, None) for i, d in enumerate(recipe.directories)]
    items += [(("symlinks", i, "path"), s.path, None) for i, s in enumerate(recipe.symlinks)]
    items += [(("copy", i, "dst"), c.dst, None) for i, c in enumerate(recipe.copy_)]
    for loc, image_path, only in items:
        key = "/" + "/".join(p for p in image_path.split("/") if p not in ("", "."))  # /a/./b is /a/b
        for plat in only or recipe.platforms:
            if (plat, key) in seen:
                first = _format_loc(seen[(plat, key)])
                raise loaded.error(loc, f"duplicate path {key} (also written by {first})")
            seen[(plat, key)] = loc


def resolve_epoch(loaded: LoadedRecipe) -> tuple[int, str]:
    """SOURCE_DATE_EPOCH, else the recipe's epoch, else the last git commit of its folder.

    Returns the epoch and where it came from, for the build log.

    Seconds since 1970; RecipeError (exit 2) for a SOURCE_DATE_EPOCH that is not a whole number or past
    8^11-1.
    """
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env is not None and env.strip():
        if not (env.strip().isascii() and env.strip().isdigit()):
            raise RecipeError(f"SOURCE_DATE_EPOCH: {env!r} is not a whole number of seconds")
        if int(env) > MAX_EPOCH:
            raise RecipeError(f"SOURCE_DATE_EPOCH: {env.strip()} is after {MAX_EPOCH} (2242-03-16), the last "
                              "time a tar header can hold")
        return int(env), "SOURCE_DATE_EPOCH"
    if loaded.recipe.epoch is not None:
        return loaded.recipe.epoch, f"{loaded.path.name}: epoch"
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%ct", "--", "."],
            cwd=loaded.folder,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip().isascii() and result.stdout.strip().isdigit():
            return int(result.stdout.strip()), "last git commit of the recipe's folder"
    except OSError:
        pass
    return 0, "no SOURCE_DATE_EPOCH, no epoch in the recipe, no git history: 0"
