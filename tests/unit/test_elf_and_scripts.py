"""ELF code the image's platform cannot run (xarch/build/elfcheck.py), read from the host's own Python
binary and a header changed byte by byte; and the simple commands xarch reads from a maintainer
script (xarch/sources/debian/scripts.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from xarch import platforms
from xarch.build.elfcheck import ElfHeader, foreign_files, mismatch, read_header
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.scripts import commands

HOST_ELF = Path(sys.executable).resolve().read_bytes()[:64]


def host_header() -> ElfHeader:
    header = read_header(HOST_ELF)
    assert header is not None, f"{sys.executable} is no ELF file"
    return header


def a_platform_that_cannot_run_it() -> platforms.Platform:
    return next(p for p in platforms.all_platforms().values() if mismatch(host_header(), p) is not None)


def test_the_hosts_own_code_fits_the_host_and_no_other_architecture() -> None:
    header = host_header()
    assert header.type in ("ET_EXEC", "ET_DYN")
    host = platforms.host()
    assert mismatch(header, host) is None
    other = a_platform_that_cannot_run_it()
    reason = mismatch(header, other)
    assert reason is not None and reason.startswith(f"is {host.oci} code (") and other.oci in reason


def test_not_elf_or_a_cut_header_is_no_code() -> None:
    assert read_header(b"#!/bin/sh\n") is None
    assert read_header(HOST_ELF[:5]) is None
    assert read_header(HOST_ELF[:4] + b"\x09" + HOST_ELF[5:]) is None  # EI_CLASS 9: none such


def test_foreign_files_names_each_and_honours_allowed_globs() -> None:
    other = a_platform_that_cannot_run_it()
    tree = Tree()
    for path in ("usr/bin/tool", "opt/emu/tool", "usr/share/doc"):
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o755, data=HOST_ELF if "doc" not in path else b"text", origin="pkg"))
    found = foreign_files(tree, other, allowed=["/opt/emu/**"])
    assert [(f.path, f.origin) for f in found] == [("usr/bin/tool", "pkg")]
    assert foreign_files(tree, other, exempt_origins=frozenset({"pkg"})) == []


def test_a_scripts_commands_with_its_variables_filled_in() -> None:
    script = b"""#!/bin/sh
set -e
NAME=nginx
if [ "$1" = configure ]; then
    adduser --system --group --home /var/lib/$NAME "$NAME"
    update-alternatives --install /usr/bin/x x "${DPKG_ROOT}/usr/bin/$NAME-x" 10
fi
"""
    found = [(c.name, c.words, c.resolved) for c in commands(script)]
    assert ("adduser", ("adduser", "--system", "--group", "--home", "/var/lib/nginx", "nginx"), True) in found
    alternatives = ("update-alternatives", "--install", "/usr/bin/x", "x", "/usr/bin/nginx-x", "10")
    assert ("update-alternatives", alternatives, True) in found
