"""What a build writes is never what it reads: outputs and the cache inside the recipe folder.

Found by building `files: [{src: .}]` twice with `-o oci:out`: the second image held the
first one under /app/out (and a `.xarchignore` `!out` could not be the reason).
"""

from __future__ import annotations

from pathlib import Path

import pathspec
import pytest

from tests.support.e2e import EPOCH, image_files, xarch_ok
from xarch import platforms
from xarch.ignorefile import _literal

HOST = platforms.host().name

RECIPE = f"""\
name: selfcopy
platforms: [{HOST}]
epoch: {EPOCH}
files:
  - {{src: ., dst: /app}}
"""


def test_outputs_and_the_cache_in_the_recipe_folder_are_never_source(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "xarch.yaml").write_text(RECIPE)
    (folder / "a.txt").write_text("hi\n")
    (folder / ".xarchignore").write_text("!out\n!image.tar\n!cache\n")  # cannot bring them back
    outputs = ("-o", "oci:out", "-o", "oci-archive:image.tar")
    first = xarch_ok("build", *outputs, cache=folder / "cache", cwd=folder)
    assert (folder / "out" / "index.json").is_file() and (folder / "cache").is_dir()
    second = xarch_ok("build", *outputs, cache=folder / "cache", cwd=folder)
    names = sorted(image_files(folder / "out", HOST))
    assert names == ["app", "app/.xarchignore", "app/a.txt", "app/xarch.yaml"], names
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]  # the same index digest


@pytest.mark.parametrize("name", ["a*b", "[x]", "q?", "back\\slash", "trailing ", "#hash", "!bang",
                                  "sp ace/in"])
def test_a_written_path_is_matched_literally(name: str) -> None:
    spec = pathspec.GitIgnoreSpec.from_lines([_literal(name)])
    assert spec.match_file(name) and spec.match_file(name + "/below")
    assert not spec.match_file(name.replace(name[0], "z", 1) if name[0] != "z" else "y" + name[1:])
