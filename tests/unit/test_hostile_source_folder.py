"""What a build writes is never what it reads: outputs and the cache inside the recipe folder.

Found by building `files: [{src: .}]` twice with `-o oci:out`: the second image held the
first one under /app/out (and a `.xarchignore` `!out` could not be the reason).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pathspec
import pytest

from tests.support.e2e import EPOCH, image_files, xarch_ok
from tests.support.needs import need_tool
from xarch import platforms
from xarch.build.ignorefile import IGNORE_FILE, MAX_IGNORE_FILE, _literal, ignore_matcher
from xarch.errors import InputError, RecipeError
from xarch.recipe import load

HOST = platforms.host().name

RECIPE = f"""\
name: selfcopy
platforms: [{HOST}]
epoch: {EPOCH}
files:
  - {{src: ., dst: /app}}
stages:
  build:
    files:
      - {{src: busybox, dst: /bin/sh, mode: "0755"}}
    steps:
      - run: mkdir /out && cd /src && find . | sort > /out/src-list
copy:
  - {{from: "build:/out/src-list", dst: /src-list}}
"""


def test_outputs_and_the_cache_in_the_recipe_folder_are_never_source(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "xarch.yaml").write_text(RECIPE)
    (folder / "a.txt").write_text("hi\n")
    shutil.copy(need_tool("busybox"), folder / "busybox")
    (folder / ".xarchignore").write_text("!out\n!image.tar\n!cache\n")  # cannot bring them back
    outputs = ("-o", "oci:out", "-o", "oci-archive:image.tar")
    first = xarch_ok("build", *outputs, cache=folder / "cache", cwd=folder)
    assert (folder / "out" / "index.json").is_file() and (folder / "cache").is_dir()
    second = xarch_ok("build", *outputs, cache=folder / "cache", cwd=folder)
    files = image_files(folder / "out", HOST)
    assert sorted(files) == ["app", "app/.xarchignore", "app/a.txt", "app/busybox", "app/xarch.yaml",
                             "src-list"], sorted(files)
    # A stage's /src (its inputs) is read through the same rules.
    assert files["src-list"].data.decode().split() == [".", "./.xarchignore", "./a.txt", "./busybox"]
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]  # the same index digest


@pytest.mark.parametrize("name", ["a*b", "[x]", "q?", "back\\slash", "trailing ", "#hash", "!bang",
                                  "sp ace/in"])
def test_a_written_path_is_matched_literally(name: str) -> None:
    spec = pathspec.GitIgnoreSpec.from_lines([_literal(name)])
    assert spec.match_file(name) and spec.match_file(name + "/below")
    assert not spec.match_file(name.replace(name[0], "z", 1) if name[0] != "z" else "y" + name[1:])


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.symlink_to("/etc/hostname"), "is a symbolic link"),
    (lambda p: os.mkfifo(p), "is not a regular file"),  # was skipped in silence (is_file() is False)
    (lambda p: p.mkdir(), "is not a regular file"),
    (lambda p: p.write_bytes(b"x" * (MAX_IGNORE_FILE + 1)), f"more than {MAX_IGNORE_FILE}"),
    (lambda p: p.write_bytes(b"\xff\xfe\n"), "not UTF-8 text"),
])
def test_an_odd_ignore_file_is_one_line(tmp_path: Path, make: Callable[[Path], object], message: str) -> None:
    # A symlink was followed to any host file and read as patterns; a FIFO was silently no file.
    make(tmp_path / IGNORE_FILE)
    with pytest.raises(InputError) as caught:
        ignore_matcher(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / IGNORE_FILE}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("glob", ["/", "!", "", "./", "!/", " / "])
def test_an_input_glob_that_names_no_path_is_one_line(tmp_path: Path, glob: str) -> None:
    # These compiled to no pattern at all, so the stage silently got an empty /src.
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: g\nplatforms: [{HOST}]\nstages:\n  build:\n    inputs: [{json.dumps(glob)}]\n"
                      "    files: []\n")
    with pytest.raises(RecipeError) as caught:
        load(recipe)
    assert str(caught.value) == (f"{recipe}:5: stages.build.inputs[0]: {glob!r}: an input glob names no path "
                                 "(all of the folder is `**`)")
