"""Text from an image printed by `xarch inspect` and `xarch diff`: one line per entry, no markup.

Found with an image holding a file named `evil\\x1b[2Jname` (the escape reached the terminal),
one named `new\\nline` (two lines, the second looking like an entry of its own) and a symlink
to `[/x]` (rich read it as a closing markup tag: `xarch diff` ended with exit 70).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, xarch, xarch_ok
from xarch import platforms
from xarch.errors import InputError
from xarch.visible import surrogates_escaped, visible

HOST = platforms.host().name


@pytest.fixture(scope="module")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("text")
    (folder / "d").mkdir()
    (folder / "d" / "plain").write_text("")
    (folder / "xarch.yaml").write_text(
        f"name: t\nplatforms: [{HOST}]\nepoch: {EPOCH}\nfiles:\n  - {{src: d, dst: /d}}\n")
    xarch_ok("build", "-f", str(folder / "xarch.yaml"), "-q", "-o", f"oci:{folder / 'a'}", cache=folder / "c")
    (folder / "d" / "evil\x1b[2Jname").write_text("")
    (folder / "d" / "new\nline").write_text("")
    (folder / "d" / "[red]red").write_text("")
    (folder / "d" / "lnk").symlink_to("[/x]")
    xarch_ok("build", "-f", str(folder / "xarch.yaml"), "-q", "-o", f"oci:{folder / 'b'}", cache=folder / "c")
    return folder / "a", folder / "b"


def test_inspect_files_escapes_control_characters(two_images: tuple[Path, Path], tmp_path: Path) -> None:
    result = xarch_ok("inspect", "--files", f"oci:{two_images[1]}", cache=tmp_path)
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout and len(lines) == 6, lines
    assert [line.split(maxsplit=4)[4] for line in lines] == [
        "/d", "/d/[red]red", "/d/evil\\x1b[2Jname", "/d/lnk -> [/x]", "/d/new\\nline", "/d/plain"]


def test_diff_shows_markup_like_names_as_text(two_images: tuple[Path, Path], tmp_path: Path) -> None:
    result = xarch("diff", f"oci:{two_images[0]}", f"oci:{two_images[1]}", cache=tmp_path,
                   extra_env={"COLUMNS": "400"})
    assert result.returncode == 1, result.stderr  # differences, not an internal error
    assert "\x1b" not in result.stdout
    for shown in ("d/[red]red", "symlink → [/x]", "d/evil\\x1b[2Jname", "d/new\\nline"):
        assert shown in result.stdout, (shown, result.stdout)


def test_visible_escapes_c0_del_and_c1_only() -> None:
    assert visible("a\x1b[2Jb\nc\td\x7f\x85é[/x]") == "a\\x1b[2Jb\\nc\\td\\x7f\\x85é[/x]"


def test_visible_shows_a_byte_that_was_not_utf8_as_that_byte() -> None:
    # PEP 383: os.fsdecode(b"caf\xe9") is "caf\udce9"; shown as the byte, never as \udce9 or raw.
    assert visible("caf\udce9 \udc80\udcff") == "caf\\xe9 \\x80\\xff"
    assert visible("\ud800") == "\\ud800"  # a surrogate that no byte made: Python's own escape
    assert surrogates_escaped("a\nb\udcff") == "a\nb\\xff"  # line breaks left to the caller
    assert str(InputError("x\udcff.yaml: no such recipe file")) == "x\\xff.yaml: no such recipe file"


def test_inspect_of_a_path_that_reads_like_markup(two_images: tuple[Path, Path], tmp_path: Path) -> None:
    # A layout at `…/[/x]` (a folder `[` holding `x]`) ended `xarch inspect` with MarkupError, exit 70.
    import shutil

    odd = tmp_path / "[" / "x]"
    shutil.copytree(two_images[0], odd)
    result = xarch_ok("inspect", str(odd), cache=tmp_path / "c", extra_env={"COLUMNS": "400"})
    assert f"{odd} (oci)" in result.stdout
