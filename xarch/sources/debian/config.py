"""Recipe models for Debian sources and package selections (embedded by xarch/recipe.py)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xarch import platforms
from xarch.oci.digest import canonical_json, sha256_digest
from xarch.sources.debian.hostapt import default_mirror

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SNAPSHOT_ROOT = "http://snapshot.debian.org/archive"
_SNAPSHOT_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


def is_snapshot_timestamp(value: str) -> bool:
    """True when VALUE is YYYYMMDDTHHMMSSZ and a real UTC instant (no month 13, no 25 o'clock: the
    pattern alone let those reach the archive's date arithmetic, an internal error)."""
    if not _SNAPSHOT_RE.match(value):
        return False
    try:
        datetime.strptime(value, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return False
    return True
# name, an optional architecture qualifier (:native, :arm64; what a cross root installs
# it for), an optional =version.
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")


class DebianSource(BaseModel):
    """Where packages come from and which keys may sign the archive."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    suites: list[str]
    components: list[str] = Field(default_factory=lambda: ["main"])
    # The mirror is transport only (the signature vouches for the content), so it is
    # left out of the lock's input hash: the same lock works from any mirror. Empty: the
    # host's apt mirror, looked up when first needed (mirror_url).
    mirror: str = ""
    # A snapshot.debian.org-style timestamp (20250520T000000Z). When set, the archive is
    # read at that instant: `{snapshot}` in `mirror` is replaced by it, otherwise
    # snapshot.debian.org is used, and Valid-Until is judged at that instant.
    snapshot: str | None = None
    keyring: Path = DEFAULT_KEYRING
    # Full fingerprints (primary or signing subkey); when given, only they may sign.
    fingerprints: list[str] = Field(default_factory=list)

    @field_validator("suites", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("suites", "components")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one")
        for item in value:
            if not item or ".." in item or any(c.isspace() for c in item):
                raise ValueError(f"{item!r} is not a valid name")
        return value

    @field_validator("snapshot")
    @classmethod
    def _snapshot_format(cls, value: str | None) -> str | None:
        if value is not None and not is_snapshot_timestamp(value):
            raise ValueError(f"{value!r} is not a snapshot timestamp like 20250520T000000Z")
        return value

    @field_validator("fingerprints")
    @classmethod
    def _fingerprint_format(cls, value: list[str]) -> list[str]:
        cleaned = []
        for fpr in value:
            compact = fpr.replace(" ", "").upper()
            if not re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", compact):
                raise ValueError(f"{fpr!r} is not a full OpenPGP fingerprint (40 hex digits)")
            cleaned.append(compact)
        return cleaned

    @field_validator("mirror")
    @classmethod
    def _mirror_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    def mirror_url(self) -> str:
        """The recipe's mirror, else the host's apt mirror (its security mirror when every suite is
        a -security one: xarch.sources.debian.hostapt.default_mirror). Read when a URL is first
        needed, not when the recipe is read: a build whose packages are all cached never parses
        the host's apt sources (python-debian's deb822 reader, ~40 ms to import)."""
        if self.mirror:
            return self.mirror
        return default_mirror(security=all(suite.endswith("-security") for suite in self.suites))

    def base_url(self) -> str:
        """The archive root to fetch dists/ and pool/ from."""
        mirror = self.mirror_url()
        if self.snapshot is None:
            return mirror.replace("{snapshot}", "").rstrip("/")
        if "{snapshot}" in mirror:
            return mirror.replace("{snapshot}", self.snapshot).rstrip("/")
        # snapshot.debian.org names archives like the mirror's last folder: debian, debian-security.
        archive = mirror.rstrip("/").rsplit("/", 1)[-1] or "debian"
        return f"{SNAPSHOT_ROOT}/{archive}/{self.snapshot}"

    def identity(self) -> dict[str, Any]:
        """What decides the lock's content (not the mirror, not where the keyring lives)."""
        return {
            "suites": self.suites,
            "components": self.components,
            "snapshot": self.snapshot,
            "fingerprints": sorted(self.fingerprints),
        }


class PlatformPackages(BaseModel):
    """A recipe's `platforms.PLATFORM` of a package selection: ADD, names installed on that
    platform only (`name`, `name:arch`, `name=version`); EXCLUDE, names of `packages` left out there."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    add: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class PackageSelection(BaseModel):
    """Which packages an image (or a stage) gets; `name`, `name:arch` or `name=version`."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    packages: list[str] = Field(default_factory=list)
    platforms: dict[str, PlatformPackages] = Field(default_factory=dict)
    recommends: bool = False
    essential: bool = False
    # "reproduce": no script runs, their effects are reproduced (xarch.sources.debian.effects);
    # "run": the packages' preinst and postinst also run, in the step sandbox
    # (xarch.build.runscripts). Not part of the lock's identity.
    maintainer_scripts: Literal["reproduce", "run"] = "reproduce"

    @field_validator("packages")
    @classmethod
    def _package_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_package(name)
        return value

    @model_validator(mode="after")
    def _platform_lists(self) -> PackageSelection:
        for plat, extra in self.platforms.items():
            try:
                platforms.get(plat)
            except platforms.UnknownPlatform as exc:
                raise ValueError(f"platforms: {exc}") from None
            for name in extra.add:
                _check_package(name)
            for name in extra.exclude:
                if name not in self.packages:
                    raise ValueError(f"platforms.{plat}.exclude: {name!r} is not in packages")
        return self

    def for_platform(self, platform_name: str) -> list[str]:
        """The requested packages of one platform, in recipe order, without duplicates.
        Raises UnknownPlatform (exit 2) when PLATFORM_NAME names no platforms/*.yaml file."""
        extra = self._platform_entry(platform_name)
        wanted = [p for p in self.packages if extra is None or p not in extra.exclude]
        if extra is not None:
            wanted += extra.add
        return list(dict.fromkeys(wanted))

    def _platform_entry(self, platform_name: str) -> PlatformPackages | None:
        wanted = platforms.get(platform_name).name
        for key, extra in self.platforms.items():
            if platforms.get(key).name == wanted:
                return extra
        return None

    def identity(self) -> dict[str, Any]:
        """The selection as JSON data for the lock's input digest, without maintainer_scripts
        (which changes how packages are installed, not which)."""
        from xarch.recipecache import plain

        # plain: as model_dump(mode="json"), without building a serializer at each build
        data = plain(self, by_alias=False)
        return {name: value for name, value in data.items() if name != "maintainer_scripts"}


def _check_package(name: str) -> None:
    if not _PACKAGE_RE.match(name):
        raise ValueError(f"{name!r} is not a Debian package name (optionally name:arch, name=version)")


def inputs_digest(value: Any) -> str:
    """sha256 of canonical JSON: the lock records it to notice a changed recipe."""
    return sha256_digest(canonical_json(value))
