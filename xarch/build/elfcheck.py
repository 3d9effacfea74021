"""No foreign code in an image: every ELF file is checked against the platform's ELF facts.

The facts are data (the `elf:` block of platforms/*.yaml): e_machine, EI_CLASS, EI_DATA,
the EI_OSABI values Linux loads, other kinds the platform runs (amd64: i386 and x32),
and e_flags patterns its code never has (arm/v7: soft-float). Only the ELF header is
read — the first 64 bytes of each regular file, whose layout the System V gABI fixes —
parsed by pyelftools, so a check of a whole image costs one small read per file (about
0.3 s for the 2,200 files of Debian's libc6-dev with its dependencies).

What is checked: every regular file of the final image tree that starts with the ELF
magic, of any type but ET_CORE and ET_NONE (so executables, shared objects, .o files,
kernel modules).
Not ELF, so never checked: scripts, `.a` archives (`!<arch>`), data, PE files.
Exempt: files of `Architecture: all` packages (Debian declares them free of code for the
image's CPU: firmware, cross-toolchain target libraries, emulator ROMs), and image paths
the recipe's `foreign_code:` globs name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.structs import ELFStructs

from xarch import platforms as platform_data
from xarch.build.packages import IMAGE_SET
from xarch.build.treecheck import origin_error
from xarch.errors import BuildError
from xarch.oci.pathglob import matches
from xarch.oci.tree import Tree
from xarch.platforms import ElfKind, Platform
from xarch.recipe import LoadedRecipe, format_loc
from xarch.sources.debian.lock import package_origin  # not .install: the installer is not needed here

if TYPE_CHECKING:
    from xarch.sources.debian.lock import Lock

ELF_MAGIC = b"\x7fELF"
HEADER_SIZE = 64  # an ELF64 header; ELF32's is 52 (System V gABI, "ELF Header")
BITS = {"ELFCLASS32": "32-bit", "ELFCLASS64": "64-bit"}
ORDER = {"ELFDATA2LSB": "little-endian", "ELFDATA2MSB": "big-endian"}


class ForeignCode(BuildError):
    """An ELF file in an image that the image's platform cannot run (exit 2)."""


@dataclass(frozen=True)
class ElfHeader:
    """The fields of an ELF header the check reads, as pyelftools names them."""

    kind: ElfKind
    osabi: str
    type: str  # ET_EXEC, ET_DYN, ET_REL, ET_CORE …
    flags: int


@cache
def _structs(elf_class: int, data: int) -> ELFStructs:
    """pyelftools' header structures for EI_CLASS/EI_DATA, built once (what ELFFile does per
    file, at ~1 ms each; parsing with them costs ~30 µs)."""
    structs = ELFStructs(little_endian=data == 1, elfclass=32 if elf_class == 1 else 64)
    structs.create_basic_structs()
    return structs


def read_header(head: bytes) -> ElfHeader | None:
    """The ELF header at the start of HEAD (its first 64 bytes suffice); None when HEAD is not
    ELF, or too short or malformed to be loaded as code. Follows the System V gABI "ELF
    Header" (e_ident EI_CLASS/EI_DATA/EI_OSABI, e_type, e_machine, e_flags); raises nothing."""
    if not head.startswith(ELF_MAGIC) or len(head) < 6 or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None  # EI_CLASS and EI_DATA must be 1 or 2 (ELFCLASS32/64, ELFDATA2LSB/MSB)
    try:
        header = _structs(head[4], head[5]).Elf_Ehdr.parse(head[:HEADER_SIZE])
    except (ELFError, ConstructError, ValueError):
        return None  # a truncated header: no loader would run it
    ident = header["e_ident"]
    kind = ElfKind(str(header["e_machine"]), str(ident["EI_CLASS"]), str(ident["EI_DATA"]))
    return ElfHeader(kind, str(ident["EI_OSABI"]), str(header["e_type"]), int(header["e_flags"]))


def describe(kind: ElfKind) -> str:
    """"linux/amd64 code (Advanced Micro Devices X86-64, 64-bit little-endian)": the platform
    whose `elf:` facts match KIND (else "code for …"), e_machine named by pyelftools. Raises nothing."""
    # Loaded here, when a name is needed (a mismatch): ~7 ms of every build with ELF files.
    from elftools.elf.descriptions import describe_e_machine

    machine = describe_e_machine(kind.machine)
    if machine.startswith("<unknown"):
        machine = kind.machine
    detail = f"{machine}, {BITS.get(kind.elf_class, kind.elf_class)} {ORDER.get(kind.data, kind.data)}"
    owners = [p.oci for p in platform_data.all_platforms().values() if p.elf and p.elf.kind == kind]
    return f"{owners[0]} code ({detail})" if owners else f"code for {detail}"


def mismatch(header: ElfHeader, platform: Platform) -> str | None:
    """Why code with HEADER cannot be part of PLATFORM's image, or None when it can.

    Checks, in order, (e_machine, EI_CLASS, EI_DATA) against the platform's kind and `also`,
    EI_OSABI against its `osabi`, e_flags against its `refuse_flags`; ET_CORE/ET_NONE and a
    platform without `elf:` facts always pass. Raises nothing."""
    facts = platform.elf
    if facts is None or header.type in ("ET_CORE", "ET_NONE"):  # a core dump, no file type: not code
        return None
    wanted = facts.kind

    def image() -> str:  # named only for a reason given: most files have none
        return f"the image is {platform.oci} ({describe(wanted).split('(', 1)[1]}"

    if header.kind != facts.kind and header.kind not in facts.also:
        return f"is {describe(header.kind)}, {image()}"
    if header.osabi not in facts.osabi:
        return f"is {header.osabi} code (not Linux's: {', '.join(facts.osabi)}), {image()}"
    for rule in facts.refuse_flags:
        if header.flags & rule.mask == rule.value:
            return f"uses {rule.means} (e_flags {header.flags:#x}), {image()}"
    return None


@dataclass(frozen=True)
class Finding:
    """One ELF file a platform cannot run: image path, origin (e.g. "copy[0]", a package's
    origin, "" when unknown) and the reason (mismatch's text)."""

    path: str  # image path, no leading "/"
    origin: str
    reason: str


def foreign_files(tree: Tree, platform: Platform, allowed: Iterable[str] = (),
                  exempt_origins: frozenset[str] = frozenset()) -> list[Finding]:
    """Every regular file of TREE that is ELF code PLATFORM cannot run, in path order.

    ALLOWED: image-path globs (layers' syntax) never checked; EXEMPT_ORIGINS: entry origins
    never checked (the files of `Architecture: all` packages). Reads the first 64 bytes
    (HEADER_SIZE) of each regular file; raises OSError only if a file source cannot be read.
    """
    patterns = list(allowed)
    found = []
    for entry in tree:
        if entry.type != "file" or entry.origin in exempt_origins:
            continue
        header = read_header(entry.head(HEADER_SIZE))
        if header is None:
            continue
        reason = mismatch(header, platform)
        if reason and not any(matches(pattern, entry.path) for pattern in patterns):
            found.append(Finding(entry.path, entry.origin, reason))
    return found


def check_image(loaded: LoadedRecipe, tree: Tree, platform: Platform, lock: Lock | None) -> None:
    """Raise ForeignCode for the first ELF file of TREE (PLATFORM's final image tree) that
    PLATFORM cannot run, naming its image path, where it came from and both architectures:

        xarch.yaml:31: copy[0]: /usr/lib/x.so (from build:/out) is linux/amd64 code (…),
        the image is linux/arm64 (…); if deliberate, add the path to foreign_code

    ForeignCode is a BuildError (exit 2); LOCK's `Architecture: all` packages are exempt.
    """
    recipe = loaded.recipe
    packages = lock.entries(platform.name, IMAGE_SET) if lock and recipe.packages is not None else []
    exempt = frozenset(package_origin(p) for p in packages if p.architecture == "all")
    found = foreign_files(tree, platform, recipe.foreign_code, exempt)
    if not found:
        return
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    sources = {format_loc(("copy", index)): copy.source for index, copy in enumerate(recipe.copy_)}
    where = f" (from {sources[first.origin]})" if first.origin in sources else ""
    message = f"/{first.path}{where} {first.reason}{more}; if deliberate, add the path to foreign_code"
    raise ForeignCode(origin_error(loaded, first.origin, message))
