"""Hostile `python:` sections (found by trying them as a new user would): where code and files come from.

Before: `name @ URL` (also `file:///…`) went to uv, which fetched or read it behind index_url;
`requirements_file: ../../../etc/hostname` was read; a requirements file that is a symlink to
/etc/shadow was read and its first line echoed in the error; a FIFO hung `xarch lock`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest

from xarch.errors import RecipeError
from xarch.sources.python.config import PythonSpec, read_requirements

DIRECT = "is a direct reference (name @ URL)"


@pytest.mark.parametrize("requirement", [
    "flask @ https://evil.example/flask-3.1.0-py3-none-any.whl",
    "flask @ file:///etc/passwd",
    "flask[async] @ git+https://evil.example/flask.git ; python_version >= '3.8'",
])
def test_a_direct_reference_is_refused_inline(requirement: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"direct reference \(name @ URL\)"):
        PythonSpec.model_validate({"requirements": [requirement]})


def test_a_direct_reference_is_refused_in_files(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("click\nflask @ file:///etc/passwd\n")
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["x @ https://e.example/x.whl"]\n')
    cases = (("requirements.txt", "requirements.txt:2: "), ("pyproject.toml", "dependencies[0]: "))
    for name, where in cases:
        spec = PythonSpec.model_validate({"requirements_file": name})
        with pytest.raises(RecipeError) as caught:
            read_requirements(spec, tmp_path, tmp_path / "xarch.yaml")
        assert where in str(caught.value) and DIRECT in str(caught.value)


@pytest.mark.parametrize("name", ["../../../etc/hostname", "sub/../../x", "/etc/passwd"])
def test_a_requirements_file_outside_the_folder_is_refused(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="must be a file beside the recipe"):
        PythonSpec.model_validate({"requirements_file": name})


def test_a_requirements_file_that_leads_out_or_blocks_is_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("root-hash-line-not-a-requirement:::\n")
    folder = tmp_path / "app"
    (folder / "sub").mkdir(parents=True)
    (folder / "req.txt").symlink_to(secret)
    (folder / "sub" / "up").symlink_to(tmp_path)
    os.mkfifo(folder / "fifo.txt")
    (folder / "inside.txt").write_text("click\n")
    (folder / "link.txt").symlink_to("inside.txt")
    for name, message in (("req.txt", "leads out of the recipe's folder"),
                          ("sub/up/outside.txt", "leads out of the recipe's folder"),
                          ("fifo.txt", "is not a regular file")):
        with pytest.raises(RecipeError) as caught:
            read_requirements(PythonSpec.model_validate({"requirements_file": name}), folder,
                              folder / "xarch.yaml")
        assert message in str(caught.value) and "root-hash" not in str(caught.value)
    assert read_requirements(PythonSpec.model_validate({"requirements_file": "link.txt"}), folder,
                             folder / "xarch.yaml") == ["click"]
