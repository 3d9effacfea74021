"""binfmt_misc entries and their status (xarch/run/binfmt.py), read from files as the kernel shows
them (tests/integration/test_run_qemu.py has the real kernel and QEMU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xarch import platforms
from xarch.run import binfmt, qemu

AARCH64_ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def test_parse_entry_reads_interpreter_and_flags() -> None:
    entry = binfmt.parse_entry("qemu-aarch64", AARCH64_ENTRY)
    interpreter = "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    assert entry == binfmt.BinfmtEntry("qemu-aarch64", True, interpreter, "POCF")
    assert entry.fix_binary
    text = AARCH64_ENTRY.replace("enabled", "disabled").replace("POCF", "P")
    disabled = binfmt.parse_entry("qemu-arm", text)
    assert not disabled.enabled and not disabled.fix_binary


def test_register_line_from_an_update_binfmts_format_file() -> None:
    fields = {
        "package": "qemu-user-static", "interpreter": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "magic": r"\x7f\x45\x4c\x46", "offset": "0", "mask": r"\xff\xff\xff\xff", "credentials": "no",
        "fix_binary": "yes", "preserve": "yes",
    }
    assert binfmt.register_line("qemu-aarch64", fields) == (
        r":qemu-aarch64:M:0:\x7f\x45\x4c\x46:\xff\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:FP"
    )


def test_status_of_an_unmounted_binfmt_dir_says_so(tmp_path: Path, arm64: platforms.Platform) -> None:
    state = binfmt.status(arm64, root=tmp_path)
    assert not state.works
    assert state.problem() == f"binfmt_misc is not mounted at {binfmt.BINFMT_DIR}"


def binfmt_dir(root: Path, status: str = "enabled", entry: str | None = AARCH64_ENTRY) -> Path:
    root.mkdir()
    (root / "status").write_text(status + "\n")
    (root / "register").write_text("")
    if entry is not None:
        (root / "qemu-aarch64").write_text(entry)
    return root


@pytest.mark.parametrize(("status", "entry", "problem"), [
    ("enabled", AARCH64_ENTRY, None),
    ("disabled", AARCH64_ENTRY, "binfmt_misc is disabled (status is not 'enabled')"),
    ("enabled", None, "no binfmt_misc entry qemu-aarch64 is registered"),
    ("enabled", AARCH64_ENTRY.replace("enabled", "disabled", 1),
     "the binfmt_misc entry qemu-aarch64 is disabled"),
])
def test_the_status_names_what_is_missing(tmp_path: Path, arm64: platforms.Platform, status: str,
                                          entry: str | None, problem: str | None) -> None:
    state = binfmt.status(arm64, root=binfmt_dir(tmp_path / "binfmt", status, entry))
    assert state.problem() == problem and state.works is (problem is None)


def test_the_qemu_binary_is_named_by_the_platform(arm64: platforms.Platform) -> None:
    assert binfmt.entry_name(arm64) == "qemu-aarch64"
    assert qemu.binary_name(arm64) == "qemu-aarch64-static"
