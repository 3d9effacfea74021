"""Parts of the ldconfig port (xarch/sources/debian/ldconfig.py): which names are libraries, glibc's
cache order (digit runs compare as numbers), and DT_SONAME read from the host's own libc, checked
against readelf."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.needs import need_tool, not_applicable
from xarch import platforms
from xarch.sources.debian.ldconfig import TARGETS, LdconfigUnsupported, is_dso, libcmp, soname_of


@pytest.mark.parametrize(("name", "dso"), [("libc.so.6", True), ("ld-linux-x86-64.so.2", True),
                                           ("ld64.so.1", True), ("libfoo.a", False), ("python3.11", False)])
def test_which_names_are_libraries(name: str, dso: bool) -> None:
    assert is_dso(name) is dso


def test_digit_runs_compare_as_numbers() -> None:
    assert libcmp(b"libfoo.so.10", b"libfoo.so.9") > 0  # byte order would say the opposite
    assert libcmp(b"libfoo.so.9", b"libfoo.so.10") < 0
    assert libcmp(b"liba.so", b"liba.so") == 0
    assert libcmp(b"lib\xe9.so", b"libz.so", signed_char=True) < 0  # x86: a signed char
    assert libcmp(b"lib\xe9.so", b"libz.so", signed_char=False) > 0  # arm: unsigned


def test_the_soname_of_the_hosts_libc_is_readelfs() -> None:
    host = platforms.host()
    target = TARGETS.get(host.debian_arch)
    if target is None:
        not_applicable(f"the ldconfig port knows amd64 and arm64, not {host.debian_arch}")
    libc = Path(f"/lib/{host.triplet}/libc.so.6").resolve()
    data = libc.read_bytes()
    dynamic = subprocess.run([need_tool("readelf"), "-d", str(libc)], capture_output=True, text=True,
                             check=True).stdout
    expected = re.search(r"\(SONAME\)\s+Library soname: \[([^]]+)\]", dynamic)
    assert expected is not None
    assert soname_of(data, target) == expected.group(1) == "libc.so.6"
    assert soname_of(b"#!/bin/sh\n" + b"\0" * 64, target) is None  # not ELF: skipped, as ldconfig does
    with pytest.raises(LdconfigUnsupported, match="32-bit"):
        soname_of(data[:4] + b"\x01" + data[5:], target)
