"""A stage is cached by what it reads (issue 13, "Caching by what a stage reads"), `.xarchignore`
leaves files out of `files:` folders and stage inputs, and the default layering puts what changes
least first.

Stages run natively in a root whose only file is the host's static busybox as /bin/sh
(as in test_e2e_stages.py), so no archive is needed. A hit is `-v`'s "step 1/1: cached" line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, _json, image_files, manifests, xarch, xarch_ok
from tests.support.stages import HOST, SHELL, write_recipe
from xarch.build.ignorefile import ignore_matcher, inputs_matcher, select
from xarch.errors import InputError

RECIPE = f"""\
name: inputs
platforms: [{HOST}]
epoch: {EPOCH}
config:
  env: {{A: "1"}}
stages:
  build:
{SHELL}    inputs: ["src/**", "Makefile"]
    steps:
      - run: |
          mkdir -p /out
          cat Makefile src/*.c > /out/app
          find . | sort > /out/seen
files:
  - {{src: notes.txt, dst: /notes.txt}}
copy:
  - {{from: "build:/out/app", dst: /app}}
  - {{from: "build:/out/seen", dst: /seen}}
"""


class Project:
    def __init__(self, folder: Path, recipe: str = RECIPE) -> None:
        self.recipe = write_recipe(folder, recipe, Makefile="all:\n", **{"notes.txt": "notes\n"})
        (folder / "src").mkdir()
        (folder / "src" / "main.c").write_text("int main(void) { return 0; }\n")
        self.cache = folder.parent / "cache"
        self.builds = 0

    def build(self) -> tuple[Path, str]:
        self.builds += 1
        out = self.recipe.parent.parent / f"out{self.builds}"
        result = xarch_ok("build", "-f", str(self.recipe), "-v", "-o", f"oci:{out}", cache=self.cache)
        return out, result.stderr


def step_state(log: str) -> str:
    if "no input changed: image" in log:
        return "cached"  # the whole image came from the cache: no input of any stage changed either
    # "step 1/1: cached", or "step 1/1: running (native)" then "step 1/1: done in 0.1 s"
    lines = [line for line in log.splitlines() if "build step 1/1:" in line]
    assert lines, log
    return "cached" if any("cached" in line for line in lines) else "running"


def test_an_unrelated_edit_is_a_stage_cache_hit_and_an_input_edit_reruns(tmp_path: Path,
                                                                        busybox_shell: None) -> None:
    project = Project(tmp_path / "p")
    out, log = project.build()
    assert step_state(log) == "running"
    seen = image_files(out, HOST)["seen"].data.decode().split()
    assert seen == [".", "./Makefile", "./src", "./src/main.c"]
    # A log beside the recipe, a recipe file the stage does not read, the image config: no input.
    folder = project.recipe.parent
    (folder / "build.log").write_text("a log the build wrote\n")
    (folder / "notes.txt").write_text("edited notes\n")
    project.recipe.write_text(RECIPE.replace('A: "1"', 'A: "2"'))
    out, log = project.build()
    assert step_state(log) == "cached"
    assert image_files(out, HOST)["notes.txt"].data == b"edited notes\n"
    # An input: the step runs again and sees it.
    (folder / "src" / "main.c").write_text("int main(void) { return 1; }\n")
    out, log = project.build()
    assert step_state(log) == "running"
    assert b"return 1" in image_files(out, HOST)["app"].data


def test_without_inputs_the_source_folder_minus_ignored_files_is_the_input(tmp_path: Path,
                                                                          busybox_shell: None) -> None:
    project = Project(tmp_path / "p", RECIPE.replace('    inputs: ["src/**", "Makefile"]\n', ""))
    folder = project.recipe.parent
    (folder / ".xarchignore").write_text("# logs are not source\n*.log\n")
    for junk in (".git/HEAD", "src/__pycache__/m.pyc", ".venv/bin/python", "src/.main.c.swp", "src/main.c~"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_text("junk\n")
    out, log = project.build()
    assert step_state(log) == "running"
    seen = image_files(out, HOST)["seen"].data.decode().split()
    # The recipe and its lock are not a stage's input; the ignore file is (it says what is).
    assert seen == [".", "./.xarchignore", "./Makefile", "./busybox", "./notes.txt", "./src", "./src/main.c"]
    (folder / "build.log").write_text("a log\n")
    (folder / ".git" / "HEAD").write_text("another commit\n")
    _, log = project.build()
    assert step_state(log) == "cached"
    (folder / "notes.txt").write_text("now an input\n")
    _, log = project.build()
    assert step_state(log) == "running"


def test_xarchignore_applies_to_a_files_folder_with_negation(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    app = folder / "app"
    for name in ("main.py", ".git/config", "__pycache__/main.cpython-311.pyc", ".venv/pyvenv.cfg",
                 ".main.py.swp", "main.py~", "cache/a.tmp", "cache/keep", "sub/__pycache__/x.pyc"):
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(name)
    (folder / ".xarchignore").write_text("app/cache\n!app/cache/keep\n")
    (folder / "xarch.yaml").write_text(f"name: ign\nplatforms: [{HOST}]\nepoch: {EPOCH}\n"
                                       "files:\n  - {src: app, dst: /app}\n")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(folder / "xarch.yaml"), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    files = sorted(image_files(out, HOST))
    assert files == ["app", "app/cache", "app/cache/keep", "app/main.py", "app/sub"]


def test_select_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.txt").write_text("c")
    (tmp_path / "a" / "d.log").write_text("d")
    (tmp_path / "e.log").write_text("e")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / ".xarchignore").write_text("*.log\n")
    # .dockerignore semantics: `*.log` is anchored at the top (a/d.log stays); no FIFO is source.
    assert select(tmp_path, tmp_path, ignore_matcher(tmp_path)) == [
        ".xarchignore", "a", "a/b", "a/d.log", "a/b/c.txt"]  # top down, each folder sorted
    only = inputs_matcher(["a/b"], "test")
    assert select(tmp_path, tmp_path, ignore_matcher(tmp_path), only) == ["a", "a/b", "a/b/c.txt"]
    (tmp_path / ".xarchignore").write_bytes(b"\xff\n")
    with pytest.raises(InputError, match=r"\.xarchignore: not UTF-8 text"):
        ignore_matcher(tmp_path)


def test_an_input_glob_cannot_leave_the_source_folder(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "p", RECIPE.replace('"src/**"', '"../secret"'))
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "c")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"xarch: error: {recipe}:10: stages.build.inputs[0]: '../secret': ")


def test_default_layers_put_stage_outputs_before_the_recipe_files(tmp_path: Path,
                                                                  busybox_shell: None) -> None:
    project = Project(tmp_path / "p")
    first, _ = project.build()
    (project.recipe.parent / "notes.txt").write_text("an app edit\n")
    second, _ = project.build()
    layers = []
    for out in (first, second):
        manifest = _json(out, manifests(out)[HOST.split("/")[0]])
        config = _json(out, manifest["config"]["digest"])
        names = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
        assert names == ["xarch layer stages", "xarch layer files"], json.dumps(config["history"])
        layers.append([layer["digest"] for layer in manifest["layers"]])
    assert layers[0][0] == layers[1][0] and layers[0][1] != layers[1][1]
