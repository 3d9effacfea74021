"""Platforms as data: one YAML file per platform under platforms/.

Adding a platform is adding a file, not a branch in the code. A platform is named the
way docker buildx names it: "amd64", "arm64", "arm/v7" (with or without "linux/").
"""

from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from xarch.errors import InputError


class UnknownPlatform(InputError, ValueError):
    """A platform name with no platforms/*.yaml file, or a host architecture without one (exit 2)."""

    pass


@dataclass(frozen=True)
class ElfKind:
    """e_machine, EI_CLASS and EI_DATA of an ELF header, named as pyelftools names them
    (System V gABI): ("EM_AARCH64", "ELFCLASS64", "ELFDATA2LSB")."""

    machine: str
    elf_class: str
    data: str


@dataclass(frozen=True)
class FlagRule:
    """An e_flags pattern this platform's code never has: (e_flags & mask) == value."""

    mask: int
    value: int
    means: str


@dataclass(frozen=True)
class ElfFacts:
    """What the ELF header of code for a platform says (the `elf:` block of platforms/*.yaml)."""

    kind: ElfKind
    osabi: tuple[str, ...]  # EI_OSABI values accepted
    also: tuple[ElfKind, ...] = ()  # other kinds the platform runs (amd64: i386, x32)
    refuse_flags: tuple[FlagRule, ...] = ()


@dataclass(frozen=True)
class Platform:
    """One platforms/*.yaml: the name users type ("arm/v7"), OCI os/architecture/variant (image
    spec, image-index.md "platform"), Debian architecture, GNU triplet, QEMU binary, `uname -m`,
    the cross root's packages and the ELF facts that identify its binaries.
    """

    name: str  # short name as users type it: "arm/v7"
    os: str
    architecture: str  # OCI architecture
    variant: str | None
    debian_arch: str
    triplet: str  # GNU triplet of the cross toolchain
    qemu: str  # qemu-<qemu>-static
    uname_machine: str
    # The cross root: build-architecture packages locked from the archive (never the host's).
    cross_root_packages: tuple[str, ...] = field(default=())
    elf: ElfFacts | None = None

    @property
    def oci(self) -> str:
        """"linux/arm/v7" as in OCI and buildx."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @property
    def slug(self) -> str:
        """A name usable in file names: "arm-v7"."""
        return self.name.replace("/", "-")

    def oci_platform(self) -> dict[str, str]:
        """The `platform` object of an index descriptor and the fields of a config."""
        result = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            result["variant"] = self.variant
        return result

    def placeholders(self) -> dict[str, str]:
        """What `{…}` in a recipe's per-platform paths may name."""
        return {
            "arch": self.architecture,
            "variant": self.variant or "",
            "platform": self.slug,
            "debian_arch": self.debian_arch,
            "triplet": self.triplet,
        }


def data_dir() -> Path:
    """platforms/ of a source checkout, else the copy shipped inside the wheel.

    FileNotFoundError when neither exists (a broken install).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "platforms", here / "_platforms"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("xarch's platforms/ data folder is missing from this install")


@cache
def all_platforms() -> dict[str, Platform]:
    """{name: Platform} of every platforms/*.yaml, read once (cached).

    The files ship with xarch: a malformed one is a bug (KeyError), not a user error.
    """
    result = {}
    # libyaml's safe loader when PyYAML has it: every build reads all of these files, and the pure
    # Python parser took ~15 ms for them (tests/unit/test_startup_imports.py checks both agree).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in sorted(data_dir().glob("*.yaml")):
        raw = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 (a safe loader)
        plat = Platform(
            name=str(raw["name"]),
            os=raw["os"],
            architecture=str(raw["architecture"]),
            variant=raw.get("variant") or None,
            debian_arch=raw["debian_arch"],
            triplet=raw["triplet"],
            qemu=raw["qemu"],
            uname_machine=raw["uname_machine"],
            cross_root_packages=tuple((raw.get("cross") or {}).get("root_packages") or ()),
            elf=_elf_facts(raw["elf"]) if raw.get("elf") else None,
        )
        result[plat.name] = plat
    return result


def _elf_kind(raw: dict[str, str]) -> ElfKind:
    return ElfKind(str(raw["machine"]), str(raw["class"]), str(raw["data"]))


def _elf_facts(raw: dict[str, Any]) -> ElfFacts:
    return ElfFacts(
        kind=_elf_kind(raw),
        osabi=tuple(raw.get("osabi") or ("ELFOSABI_SYSV",)),
        also=tuple(_elf_kind(item) for item in raw.get("also") or ()),
        refuse_flags=tuple(FlagRule(int(r["mask"]), int(r["value"]), str(r["means"]))
                           for r in raw.get("refuse_flags") or ()),
    )


def get(name: str) -> Platform:
    """The platform called NAME ("arm64", "linux/arm64", "linux/arm/v7", "arm-v7").

    UnknownPlatform (exit 2) lists the known names when NAME is none of them.
    """
    # Spaces only ("amd64, arm64"): a newline or tab is no part of a platform name.
    key = name.strip(" ")
    if key.startswith("linux/"):
        key = key[len("linux/"):]
    platforms = all_platforms()
    for plat in platforms.values():
        if key in (plat.name, plat.slug):
            return plat
    known = ", ".join(platforms)
    raise UnknownPlatform(f"unknown platform {name!r} (known: {known})")


def host() -> Platform:
    """The platform this machine runs natively.

    UnknownPlatform (exit 2) when `uname -m` names a machine without a platforms/*.yaml.
    """
    machine = host_platform.machine()
    for plat in all_platforms().values():
        if machine in (plat.uname_machine, plat.architecture):
            return plat
    raise UnknownPlatform(f"this machine's architecture {machine!r} has no file in platforms/")
