"""binfmt_misc: whether the kernel hands foreign ELF binaries to qemu-user-static.

Reads /proc/sys/fs/binfmt_misc (mounted? globally enabled? is `qemu-<name>` registered,
enabled, with which interpreter and flags) and, when root and asked, mounts it and
enables the entries. The F (fix-binary) flag matters for chroots: with it the kernel
opened the interpreter at registration time, so it need not exist inside the rootfs.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand

from xarch.errors import HostError
from xarch.platforms import Platform

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Debian's qemu-user-static ships one update-binfmts format file per emulated CPU here.
BINFMTS_FORMATS_DIR = Path("/usr/share/binfmts")


class BinfmtError(HostError):
    """binfmt_misc could not be read or set up; the message says what fixes it."""


@dataclass(frozen=True)
class BinfmtEntry:
    """One registered binfmt_misc entry as /proc/sys/fs/binfmt_misc/<name> shows it: name
    ("qemu-aarch64"), enabled, interpreter path and flags letters ("OCF"; kernel docs
    admin-guide/binfmt-misc.rst)."""

    name: str
    enabled: bool
    interpreter: str
    flags: str

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags


@dataclass(frozen=True)
class BinfmtStatus:
    """What the kernel will do with an ELF binary of one platform."""

    name: str  # "qemu-aarch64"
    mounted: bool
    globally_enabled: bool
    entry: BinfmtEntry | None

    @property
    def works(self) -> bool:
        return self.mounted and self.globally_enabled and self.entry is not None and self.entry.enabled

    def problem(self) -> str | None:
        """Why emulation through binfmt_misc does not work now, or None when it does."""
        if not self.mounted:
            return f"binfmt_misc is not mounted at {BINFMT_DIR}"
        if not self.globally_enabled:
            return "binfmt_misc is disabled (status is not 'enabled')"
        if self.entry is None:
            return f"no binfmt_misc entry {self.name} is registered"
        if not self.entry.enabled:
            return f"the binfmt_misc entry {self.name} is disabled"
        return None


def entry_name(platform: Platform) -> str:
    """The binfmt_misc entry name qemu-user-static registers for PLATFORM: "qemu-" + its
    `qemu:` CPU name ("qemu-aarch64"), as Debian's /usr/share/binfmts files name it."""
    return f"qemu-{platform.qemu}"


def is_mounted(root: Path = BINFMT_DIR) -> bool:
    """Whether the binfmt_misc file system is mounted at ROOT: its `status` and `register`
    control files exist. Raises nothing."""
    return (root / "status").exists() and (root / "register").exists()


def parse_entry(name: str, text: str) -> BinfmtEntry:
    """Parse one /proc/sys/fs/binfmt_misc/<name> file: first line "enabled"/"disabled", then
    `interpreter PATH` and `flags: LETTERS` lines (other lines ignored). Raises nothing."""
    lines = text.splitlines()
    enabled = bool(lines) and lines[0].strip() == "enabled"
    interpreter = ""
    flags = ""
    for line in lines[1:]:
        if line.startswith("interpreter "):
            interpreter = line[len("interpreter "):].strip()
        elif line.startswith("flags:"):
            flags = line[len("flags:"):].strip()
    return BinfmtEntry(name=name, enabled=enabled, interpreter=interpreter, flags=flags)


def read_entry(name: str, root: Path = BINFMT_DIR) -> BinfmtEntry | None:
    """Entry NAME under ROOT (parse_entry), or None when it is not registered. OSError other
    than a missing file (e.g. EACCES) propagates."""
    try:
        return parse_entry(name, (root / name).read_text())
    except FileNotFoundError:
        return None


def status(platform: Platform, root: Path = BINFMT_DIR) -> BinfmtStatus:
    """What the kernel does now with PLATFORM's ELF binaries: ROOT mounted, its `status` file
    "enabled", and PLATFORM's entry (entry_name). Read only; OSError from an unreadable file
    propagates."""
    name = entry_name(platform)
    if not is_mounted(root):
        return BinfmtStatus(name=name, mounted=False, globally_enabled=False, entry=None)
    globally_enabled = (root / "status").read_text().strip() == "enabled"
    entry = read_entry(name, root)
    return BinfmtStatus(name=name, mounted=True, globally_enabled=globally_enabled, entry=entry)


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise BinfmtError(f"{what} needs root: run `sudo xarch platforms --setup`")


def _run(command: BaseCommand, what: str) -> None:
    exit_code, _, stderr = command.run(retcode=None)
    if exit_code != 0:
        last = (stderr.strip().splitlines() or [f"exit code {exit_code}"])[-1]
        raise BinfmtError(f"{what} failed: {last}")


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.write_text(text)
    except OSError as error:
        raise BinfmtError(f"{what} failed: cannot write {path}: {error.strerror}") from error


def mount(root: Path = BINFMT_DIR) -> None:
    """`mount -t binfmt_misc binfmt_misc ROOT`. Raises BinfmtError (exit 3) when not root or
    when mount fails (its last stderr line)."""
    _require_root("mounting binfmt_misc")
    _run(local["mount"]["-t", "binfmt_misc", "binfmt_misc", str(root)], f"mounting binfmt_misc at {root}")


def _format_file_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    return fields


def register_line(name: str, fields: dict[str, str]) -> str:
    """The line written to binfmt_misc/register for an update-binfmts format file.

    Written by hand only for hosts without update-binfmts (binfmt-support): the kernel's
    register syntax is `:name:type:offset:magic:mask:interpreter:flags` (kernel docs
    admin-guide/binfmt-misc.rst). FIELDS: the format file's `key value` lines (update-binfmts(8));
    raises BinfmtError (exit 3) when a field holds the ':' separator, KeyError without `interpreter`.
    """
    flags = "F" if fields.get("fix_binary") == "yes" else ""
    flags += "P" if fields.get("preserve") == "yes" else ""
    flags += "C" if fields.get("credentials") == "yes" else ""
    kind = "E" if "extension" in fields else "M"
    match = fields.get("extension") if kind == "E" else fields.get("magic", "")
    if re.search(r":", fields["interpreter"] + (match or "") + fields.get("mask", "")):
        raise BinfmtError(f"binfmt format {name}: a ':' cannot be registered")
    return (
        f":{name}:{kind}:{fields.get('offset', '0')}:{match}:{fields.get('mask', '')}:"
        f"{fields['interpreter']}:{flags}"
    )


def format_file(platform: Platform) -> Path:
    """qemu-user-static's update-binfmts description of the entry (magic, mask, interpreter, flags):
    /usr/share/binfmts/qemu-<cpu>; the path only, it may not exist. Raises nothing."""
    return BINFMTS_FORMATS_DIR / entry_name(platform)


def enable(platform: Platform, root: Path = BINFMT_DIR) -> None:
    """Register and enable qemu-<name>: through update-binfmts when present, else directly.

    An entry already registered is re-enabled by writing "1" to it. Raises BinfmtError (exit 3)
    when not root, without qemu-user-static's format file, or when a write or update-binfmts fails."""
    _require_root("registering binfmt_misc entries")
    name = entry_name(platform)
    description = format_file(platform)
    if not description.is_file():
        raise BinfmtError(
            f"{description} is missing, so {name} cannot be registered: apt-get install qemu-user-static"
        )
    if read_entry(name, root) is not None:
        _write(root / name, "1", f"enabling {name}")  # registered but disabled: 1 re-enables it
        return
    if shutil.which("update-binfmts"):
        _run(local["update-binfmts"]["--enable", name], f"update-binfmts --enable {name}")
        return
    _write(root / "register", register_line(name, _format_file_fields(description)), f"registering {name}")


def ensure_binfmt(
    platforms: list[Platform], setup: bool = True, root: Path = BINFMT_DIR
) -> dict[str, BinfmtStatus]:
    """Status of each platform's entry; with SETUP, first mount, enable and register what is missing.

    Returns the status per platform name after any set-up. Raises BinfmtError (exit 3) when
    set-up is needed and fails (mount, enable); without SETUP only reads (OSError propagates).
    """
    if setup:
        if not is_mounted(root):
            mount(root)
        if (root / "status").read_text().strip() != "enabled":
            _require_root("enabling binfmt_misc")
            _write(root / "status", "1", "enabling binfmt_misc")
        for plat in platforms:
            if not status(plat, root).works:
                enable(plat, root)
    return {plat.name: status(plat, root) for plat in platforms}
