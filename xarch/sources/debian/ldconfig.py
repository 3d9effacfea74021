"""/etc/ld.so.cache as bookworm's `ldconfig` (glibc 2.36) writes it, made without running it.

libc-bin's postinst (and the `ldconfig` trigger every library package activates) runs
`ldconfig` in the new root. Its output is a pure function of the root's files, so it is
computed here from the image tree, for amd64 and arm64, with no QEMU:

- the directories: /etc/ld.so.conf (`include` globs read in sorted order, `#` comments,
  trailing slashes dropped), then Debian's built-in `/lib` and `/usr/lib`; a directory met
  twice through symlinks (merged /usr: /usr/lib/x86_64-linux-gnu is /lib/x86_64-linux-gnu)
  counts once, under the path it was first named by (ldconfig compares inode numbers);
- in each, the names `lib*.so*`, `ld-*.so*`, `ld.so.*`, `ld64.so.*` that are regular files
  or symlinks to one, read as ELF: a 64-bit `ET_DYN` with a dynamic segment and a string
  table. The key is its DT_SONAME (else its file name); a symlink whose own name is its
  target's soname, or is `X.so` with the soname starting with `X.so`, is listed under its
  own name (the development link `libz.so`). The flags are the target's: 0x0303
  (libc6,x86-64) on amd64 (x86_64 objects only), 0x0a03 (libc6,AArch64) on arm64;
- a missing soname link (`soname -> file`) is made, as `ldconfig` makes it;
- the file: format "glibc-ld.so.cache" version "1.1" only (2.36's default `-c new`), the
  entries sorted as `_dl_cache_libcmp` orders them (digit runs compared as numbers),
  descending; the string table tail-merged as elf/stringtable.c does; then, 4-aligned, the
  extension directory with one section: the generator string
  "ldconfig (Debian GLIBC VERSION) stable release version 2.36", VERSION being the root's
  libc-bin version, as the root's own ldconfig would write it.

Why a port and not the host's `ldconfig -r ROOT`: the host's is built for its own machine
and refuses the libraries of any other ("is for unknown machine 183"), and its generator
string names the host's glibc, not the image's. The port follows glibc-2.36's
elf/ldconfig.c, elf/cache.c, elf/stringtable.c, elf/readelflib.c and
sysdeps/unix/sysv/linux/{x86,arm}/readelflib.c; tests compare its bytes with the real
ldconfig's (the host's for amd64, the image's own under QEMU for arm64, and mmdebstrap's).

Not ported, refused with LdconfigUnsupported (the build reports ldconfig as not
reproduced and writes no cache): glibc-hwcaps and legacy hwcap subdirectories (`tls`,
`haswell`, `x86_64`, …, none in bookworm's packages), 32-bit ELF objects in a searched
directory (a multiarch i386/armhf root), a.out libraries, other architectures.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from xarch.oci.tree import Entry, Tree, path_bytes
from xarch.sources.debian.deb import resolve
from xarch.sources.debian.errors import UnpackError

CACHE = "etc/ld.so.cache"
CONF = "/etc/ld.so.conf"
# Debian configures glibc with slibdir=/lib, libdir=/usr/lib; the multiarch folders come
# from libc6's /etc/ld.so.conf.d/<triplet>.conf.
SYSTEM_DIRS = ("/lib", "/usr/lib")
MAGIC = b"glibc-ld.so.cache1.1"
ENDIAN_LITTLE = 2  # cache_file_new_flags_endian_little
EXTENSION_MAGIC = (-358342284) & 0xFFFFFFFF
HEADER_SIZE = 48  # sizeof (struct cache_file_new)
ENTRY_SIZE = 24  # sizeof (struct file_entry_new)
EXTENSION_SIZE = 8 + 2 * 16  # cache_extension_size: the directory with room for both sections

EM_X86_64 = 62
ET_DYN = 3
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_STRTAB, DT_SONAME = 0, 5, 14
TLS_SUBPATH = "tls"
GLIBC_HWCAPS = "glibc-hwcaps"


@dataclass(frozen=True)
class LinkerTarget:
    """What ldconfig writes and accepts on one Debian architecture (TARGETS): the cache FLAGS
    of each entry, the one ELF MACHINE read, the signedness of `char` in _dl_cache_libcmp,
    the HWCAP_NAMES of subdirectories it would search (glibc 2.36 sysdeps)."""

    flags: int  # the cache flags of every 64-bit library (readelflib.c's file_flag)
    machine: int | None  # the only ELF machine accepted (None: any, as arm's readelflib.c)
    signed_char: bool  # `char` in _dl_cache_libcmp: signed on x86, unsigned on arm
    hwcap_names: frozenset[str]  # is_hwcap_platform's names (sysdeps' dl-procinfo)


TARGETS = {
    "amd64": LinkerTarget(0x0303, EM_X86_64, True,
                    frozenset({"sse2", "x86_64", "avx512_1", "i586", "i686", "haswell", "xeon_phi"})),
    "arm64": LinkerTarget(0x0A03, None, False, frozenset({
        "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp",
        "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512",
        "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg"})),
}


class LdconfigUnsupported(UnpackError):
    """The root holds something this port does not reproduce; no cache is written."""


@dataclass(frozen=True)
class Library:
    """One ld.so.cache entry (elf/cache.c's file_entry_new): SONAME, its key; PATH, its value;
    FLAGS, LinkerTarget.flags."""

    soname: str
    path: str  # "/lib/x86_64-linux-gnu/libc.so.6": the folder as named, then the soname
    flags: int


def is_dso(name: str) -> bool:
    """elf/dl-is_dso.h: lib*.so*, ld-*.so*, ld.so.*, ld64.so.*."""
    return ((name.startswith(("lib", "ld-")) and ".so" in name)
            or name.startswith(("ld.so.", "ld64.so.")))


def libcmp(left: bytes, right: bytes, signed_char: bool = True) -> int:
    """_dl_cache_libcmp: byte order, except that digit runs compare as numbers (int arithmetic)."""
    def value(byte: int) -> int:
        return byte - 256 if signed_char and byte > 127 else byte

    def number(text: bytes, at: int) -> tuple[int, int]:
        total = 0
        while at < len(text) and 48 <= text[at] <= 57:
            total = _int32(total * 10 + text[at] - 48)
            at += 1
        return total, at

    i = j = 0
    while i < len(left):
        a = left[i]
        b = right[j] if j < len(right) else 0
        if 48 <= a <= 57:
            if not 48 <= b <= 57:
                return 1
            first, i = number(left, i)
            second, j = number(right, j)
            if first != second:
                return _int32(first - second)
        elif 48 <= b <= 57:
            return -1
        elif a != b:
            return value(a) - value(b)
        else:
            i += 1
            j += 1
    return -value(right[j]) if j < len(right) else 0


def _int32(number: int) -> int:
    return (number + 2**31) % 2**32 - 2**31


def soname_of(data: bytes, target: LinkerTarget) -> str | None:
    """DT_SONAME of a 64-bit little-endian ELF shared object ("" when it has none), or None
    when ldconfig would skip the file (not ELF, not ET_DYN, no dynamic string table,
    truncated, another machine). A 32-bit ELF or an a.out library is LdconfigUnsupported."""
    if len(data) < 64:  # sizeof (struct exec) and sizeof (Elf64_Ehdr)
        return None
    if struct.unpack_from("<I", data)[0] & 0xFFFF in (0o413, 0o314):  # ZMAGIC, QMAGIC
        raise LdconfigUnsupported("an a.out library")
    if data[:4] != b"\x7fELF" or struct.unpack_from("<H", data, 16)[0] != ET_DYN:
        return None
    if data[4] != 2:  # ELFCLASS64
        raise LdconfigUnsupported("a 32-bit ELF library")
    machine = struct.unpack_from("<H", data, 18)[0]
    if target.machine is not None and machine != target.machine:
        return None  # "is for unknown machine"
    try:
        return _elf64_soname(data)
    except struct.error:
        return None  # "file is truncated"


def _elf64_soname(data: bytes) -> str | None:
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    segments = [struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i) for i in range(phnum)]
    dynamic_offset = dynamic_size = 0
    for p_type, _, p_offset, _, _, p_filesz, _, _ in segments:
        if p_type == PT_DYNAMIC:
            dynamic_offset, dynamic_size = p_offset & 0xFFFFFFFF, p_filesz
    if dynamic_size == 0:
        return None
    dynamic = []
    at = dynamic_offset
    while True:
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == DT_NULL:
            break
        dynamic.append((tag, value))
        at += 16
    strtab = None
    for tag, value in dynamic:
        if tag == DT_STRTAB:
            loadoff = 0
            for p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ in segments:
                if p_type == PT_LOAD and value >= p_vaddr and value - p_vaddr < p_filesz:
                    loadoff = p_vaddr - p_offset
                    break
            strtab = value - loadoff
            break
    if strtab is None or not 0 <= strtab <= len(data):
        return None
    for tag, value in dynamic:
        if tag == DT_SONAME:
            start = strtab + value
            end = data.find(b"\0", start)
            if start > len(data) or end < 0:
                return None
            return data[start:end].decode("utf-8", "surrogateescape")
    return ""


class _Root:
    """The tree seen as ldconfig sees the root it runs in (symlinks followed inside it)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.children: dict[str, list[str]] = {}
        for path in tree.entries:
            parent, _, name = path.rpartition("/")
            self.children.setdefault(parent, []).append(name)

    def real(self, path: str) -> str | None:
        """PATH with every symlink followed (hard links to their first name); None if absent."""
        try:
            where = resolve(self.tree, path.lstrip("/"), follow_last=True, what=path)
        except UnpackError:
            return None
        entry = self.tree.entries.get(where)
        while entry is not None and entry.type == "hardlink":
            where = entry.linkname
            entry = self.tree.entries.get(where)
        if where == "":
            return ""
        return where if entry is not None else None

    def kind(self, path: str) -> str | None:
        real = self.real(path)
        if real is None:
            return None
        return "dir" if real == "" else self.tree.entries[real].type


def directories(root: _Root) -> list[tuple[str, str]]:
    """(path as named, real path) of every folder ldconfig searches, in its order.
    Raises LdconfigUnsupported for a folder with a glibc-hwcaps subdirectory."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(line: str) -> None:
        path = line.split("=", 1)[0].rstrip().rstrip("/")  # "DIR=TYPE": the type changes no flag here
        if not path:
            return
        real = root.real(path)
        if real is None or real in seen:
            return
        seen.add(real)
        found.append((path, real))
        if root.kind(f"{path}/{GLIBC_HWCAPS}") == "dir":
            raise LdconfigUnsupported(f"{path}/{GLIBC_HWCAPS}: glibc-hwcaps subdirectories")

    def parse(conf: str, depth: int = 0) -> None:
        real = root.real(conf)
        entry = root.tree.entries.get(real) if real else None
        if entry is None or entry.type != "file" or depth > 20:
            return
        for raw in entry.read().split(b"\n"):
            line = raw.split(b"#", 1)[0].decode("utf-8", "surrogateescape").lstrip()
            if not line:
                continue
            if line.startswith("include") and line[7:8] in (" ", "\t"):
                for pattern in line[8:].replace("\t", " ").split(" "):
                    if pattern:
                        if not pattern.startswith("/"):
                            pattern = posixpath.join(posixpath.dirname(conf), pattern)
                        for match in _glob(root, pattern):
                            parse(match, depth + 1)
            elif line[:5].lower() == "hwcap" and line[5:6] in (" ", "\t"):
                continue  # "hwcap directive ignored"
            else:
                add(line)

    parse(CONF)
    for path in SYSTEM_DIRS:
        add(path)
    return found


def _glob(root: _Root, pattern: str) -> list[str]:
    """glob(3) of an absolute PATTERN in the root, matches sorted (C locale)."""
    matches = [""]
    for part in pattern.strip("/").split("/"):
        step = []
        for base in matches:
            if not any(c in part for c in "*?["):
                if root.kind(f"{base}/{part}") is not None:
                    step.append(f"{base}/{part}")
                continue
            real = root.real(base or "/")
            if real is None:
                continue
            names = [n for n in root.children.get(real, []) if not n.startswith(".") or part.startswith(".")]
            step += [f"{base}/{n}" for n in names if fnmatch.fnmatchcase(n, part)]
        matches = step
    return sorted(matches, key=path_bytes)


def search(root: _Root, path: str, real: str, target: LinkerTarget) -> Iterator[tuple[str, str, bool]]:
    """(soname, file name, is a link) of each library ldconfig keeps in one folder.
    Raises LdconfigUnsupported for a hwcap or tls subdirectory, a 32-bit ELF or an a.out library."""
    chosen: dict[str, tuple[str, bool]] = {}
    for name in sorted(root.children.get(real, []), key=path_bytes):
        entry = root.tree.entries[f"{real}/{name}" if real else name]
        if entry.type not in ("file", "hardlink", "symlink", "dir"):
            continue
        kind = root.kind(f"{path}/{name}")
        if kind == "dir" and (name in target.hwcap_names or name == TLS_SUBPATH):
            raise LdconfigUnsupported(f"{path}/{name}: a hwcap subdirectory")
        if not is_dso(name) or kind not in ("file", "hardlink"):
            continue
        file = root.real(f"{path}/{name}")
        assert file is not None
        soname = soname_of(root.tree.entries[file].read(), target)
        if soname is None:
            continue
        soname = soname or name
        is_link = entry.type == "symlink"
        if is_link and name != soname and not (name.endswith(".so") and soname.startswith(name)):
            is_link = False
        if is_link:
            soname = name
        old = chosen.get(soname)
        if old is None or (not is_link and old[1]) or (
                is_link == old[1] and libcmp(old[0].encode(), name.encode(), target.signed_char) < 0):
            chosen[soname] = (name, is_link)
    for soname, (name, is_link) in chosen.items():
        yield soname, name, is_link


def libraries(tree: Tree, arch: str, epoch: int | None = None) -> tuple[list[Library], list[str]]:
    """Every library ldconfig would cache in TREE, in cache order, and the soname links it
    would make (made in TREE). LdconfigUnsupported: see the module doc."""
    target = TARGETS.get(arch)
    if target is None:
        raise LdconfigUnsupported(f"architecture {arch}")
    root = _Root(tree)
    found: list[Library] = []
    made: list[str] = []
    links: list[Entry] = []
    for path, real in directories(root):
        for soname, name, is_link in search(root, path, real, target):
            if not is_link and soname != name and _needs_link(root, path, name, soname):
                link = f"{real}/{soname}" if real else soname
                links.append(Entry(link, "symlink", 0o777, mtime=epoch, linkname=name))
            found.append(Library(soname, f"{path}/{soname}", target.flags))
    for entry in links:  # only once nothing was refused: a refused root stays as it was
        tree.add(entry)
        made.append("/" + entry.path)

    def compare(first: Library, second: Library) -> int:
        result = libcmp(second.soname.encode("utf-8", "surrogateescape"),
                        first.soname.encode("utf-8", "surrogateescape"), target.signed_char)
        if result == 0:
            return (first.flags < second.flags) - (first.flags > second.flags)
        return result

    # add_to_cache inserts each before the first entry that compares greater: a stable sort.
    return sorted(found, key=functools.cmp_to_key(compare)), made


def _needs_link(root: _Root, path: str, name: str, soname: str) -> bool:
    """create_links: the soname is missing, or a symlink to another file (a file stays)."""
    existing = root.real(f"{path}/{soname}")
    if existing is not None and existing == root.real(f"{path}/{name}"):
        return False
    real = root.real(path)
    entry = root.tree.entries.get(f"{real}/{soname}" if real else soname)
    return entry is None or entry.type == "symlink"


def cache_bytes(found: list[Library], generator: str) -> bytes:
    """The ld.so.cache file of FOUND (already in cache order), elf/cache.c's save_cache."""
    raw = {library.soname.encode("utf-8", "surrogateescape") for library in found}
    raw |= {library.path.encode("utf-8", "surrogateescape") for library in found}
    # stringtable_finalize: reversed strings in descending order, so a string that is the
    # tail of the one before it shares its bytes.
    ordered = sorted(raw, key=lambda s: s[::-1], reverse=True)
    offsets: dict[bytes, int] = {}
    table = bytearray()
    previous = b""
    for string in ordered:
        if previous and previous.endswith(string):
            offsets[string] = offsets[previous] + len(previous) - len(string)
        else:
            offsets[string] = len(table)
            table += string + b"\0"
        previous = string
    base = HEADER_SIZE + ENTRY_SIZE * len(found)
    extension_offset = -(-(base + len(table)) // 4) * 4
    out = bytearray(MAGIC)
    out += struct.pack("<IIB3xI12x", len(found), len(table), ENDIAN_LITTLE, extension_offset)
    for library in found:
        key = base + offsets[library.soname.encode("utf-8", "surrogateescape")]
        value = base + offsets[library.path.encode("utf-8", "surrogateescape")]
        out += struct.pack("<iIIIQ", library.flags, key, value, 0, 0)
    out += table
    out += b"\0" * (extension_offset - len(out))
    text = generator.encode()
    # One section (the generator); with no glibc-hwcaps section its string follows at once.
    out += struct.pack("<II", EXTENSION_MAGIC, 1)
    out += struct.pack("<IIII", 0, 0, extension_offset + EXTENSION_SIZE - 16, len(text))
    return bytes(out + text)


def generator(libc_bin_version: str) -> str:
    """The string Debian's ldconfig of libc-bin VERSION writes (PKGVERSION, RELEASE, VERSION)."""
    upstream = libc_bin_version.split(":", 1)[-1].split("-", 1)[0]
    return f"ldconfig (Debian GLIBC {libc_bin_version}) stable release version {upstream}"


def write_cache(tree: Tree, arch: str, libc_bin_version: str, epoch: int) -> list[str]:
    """Make /etc/ld.so.cache (0644) and the soname links ldconfig would; the image paths made.
    ARCH is the Debian architecture, EPOCH the mtime (seconds since 1970). Raises
    LdconfigUnsupported (see the module doc) before TREE is changed."""
    found, made = libraries(tree, arch, epoch)
    tree.add_parents(CACHE)
    tree.add(Entry(CACHE, "file", 0o644, mtime=epoch, data=cache_bytes(found, generator(libc_bin_version))))
    return ["/" + CACHE, *made]
