"""Stage roots made of one file, the host's static busybox as /bin/sh (so no archive is needed),
for tests that run recipe stages natively for the host's platform."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.needs import need_tool
from xarch import platforms

HOST = platforms.host().name
# A stage's `files:` that make its root: the host's static busybox as its shell (its applets
# run without links: a standalone shell).
SHELL = """    files:
      - {src: busybox, dst: /bin/sh, mode: "0755"}
"""


@pytest.fixture
def busybox_shell() -> None:
    """The host's busybox, which every stage root here uses as its shell."""
    need_tool("busybox")


def write_recipe(folder: Path, text: str, **files: str) -> Path:
    """FOLDER/xarch.yaml with TEXT, the host's busybox beside it (SHELL's source), and FILES
    (name -> text). Returns the recipe's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "xarch.yaml").write_text(text)
    shutil.copy(need_tool("busybox"), folder / "busybox")
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder / "xarch.yaml"
