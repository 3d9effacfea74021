"""The recipe's `python:` section (embedded by xarch/recipe.py).

python:
  requirements: [flask==3.1.*]      # or requirements_file: requirements.txt or pyproject.toml
  interpreter: /usr/bin/python3     # the image's interpreter: script shebangs, the Python version
  target: site-packages             # or a venv path, e.g. /opt/venv
  # version: "3.11"                 # default: the interpreter's name, else Debian's python3 (lock)
  # glibc: "2.36"                   # default: Debian's libc6 in xarch.lock (manylinux_2_36 and older)
  # index_url: https://pypi.org/simple
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xarch.errors import RecipeError

DEFAULT_INDEX = "https://pypi.org/simple"
SITE_PACKAGES = "site-packages"
MAX_REQUIREMENTS_FILE = 1024 * 1024  # bytes: a requirement list, or a pyproject.toml
_VERSION_RE = re.compile(r"^3\.\d{1,2}$")
_GLIBC_RE = re.compile(r"^2\.\d{1,3}$")
_INTERPRETER_VERSION_RE = re.compile(r"python(3\.\d{1,2})$")


def _requirement(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    # Here: only a recipe with python: requirements needs packaging, not every recipe's start-up.
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(value)
    except InvalidRequirement as error:
        raise ValueError(
            f"{value!r} is not a requirement (PEP 508): {' '.join(str(error).split())}"
        ) from None
    if parsed.url:
        # `name @ URL` would make uv fetch any URL, or read any host file (file:///…), behind index_url.
        raise ValueError(f"{value!r} is a direct reference (name @ URL); wheels come from python.index_url "
                         "only, pinned in the lock")
    return value


def _image_path(value: str, example: str) -> str:
    if not value.startswith("/") or "\x00" in value or ".." in value.split("/"):
        raise ValueError(f"must be an absolute image path without '..', e.g. {example}")
    if not [part for part in value.split("/") if part not in ("", ".")]:
        raise ValueError("must be a path below /")
    return value


class PythonSpec(BaseModel):
    """What to install from the index, for which interpreter, and where."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    requirements: list[str] = Field(default_factory=list)
    requirements_file: str | None = None
    interpreter: str = "/usr/bin/python3"
    target: str = SITE_PACKAGES
    version: str | None = None
    glibc: str | None = None
    index_url: str = DEFAULT_INDEX

    @field_validator("requirements", mode="before")
    @classmethod
    def _requirements(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                _requirement(item)
        return value

    @field_validator("requirements", "requirements_file", "interpreter", "target", "index_url", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        # They reach uv's argv, a file and error lines: a NUL cannot, other control characters hide.
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
                raise ValueError("must not contain a control character")
        return value

    @field_validator("requirements_file")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith("/") or ".." in value.split("/")):
            raise ValueError("must be a file beside the recipe, e.g. requirements.txt")
        return value

    @field_validator("interpreter")
    @classmethod
    def _interpreter(cls, value: str) -> str:
        return _image_path(value, "/usr/bin/python3")

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return value if value == SITE_PACKAGES else _image_path(value, "/opt/venv (or site-packages)")

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION_RE.fullmatch(value):
            raise ValueError(
                f'{value!r} is not a Python 3 version such as "3.11" (quote it: YAML reads 3.10 as 3.1)'
            )
        return value

    @field_validator("glibc")
    @classmethod
    def _glibc(cls, value: str | None) -> str | None:
        if value is not None and not _GLIBC_RE.fullmatch(value):
            raise ValueError(f'{value!r} is not a glibc version such as "2.36" (quoted)')
        return value

    @field_validator("index_url")
    @classmethod
    def _index(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("must be an http(s) URL of a PEP 503 simple index, e.g. https://pypi.org/simple")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_source(self) -> PythonSpec:
        if bool(self.requirements) == bool(self.requirements_file):
            raise ValueError("give requirements (a list) or requirements_file, exactly one")
        return self

    def interpreter_version(self) -> str | None:
        """ "3.11" from `version:`, else from an interpreter named python3.N, else None."""
        if self.version:
            return self.version
        match = _INTERPRETER_VERSION_RE.search(self.interpreter)
        return match.group(1) if match else None


def read_requirements(spec: PythonSpec, folder: Path, recipe: Path, field: str = "python") -> list[str]:
    """The requirement strings: the inline list, or the file's lines (comments and blank lines
    dropped). A file may hold only PEP 508 requirements: options (`-r`, `--index-url`, `-e`,
    `--hash`) are refused, since they would let the file pick where code comes from behind the lock.
    FIELD is where SPEC sits in the recipe (`python`, `stages.gen.python`), for error lines.
    Raises RecipeError naming the recipe, the field, the file and the line."""
    if spec.requirements:
        return list(spec.requirements)
    assert spec.requirements_file is not None
    from xarch.smallfile import SmallFileError, read_small

    path = folder / spec.requirements_file
    where = f"{recipe}: {field}.requirements_file"
    # A symlink out of the recipe folder would read a host file (and echo its lines in errors).
    if not path.resolve().is_relative_to(folder.resolve()):
        raise RecipeError(f"{where}: {spec.requirements_file} leads out of the recipe's folder")
    try:
        text = read_small(path, MAX_REQUIREMENTS_FILE).decode("utf-8")
    except SmallFileError as error:
        raise RecipeError(f"{where}: cannot read {path}: {error}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{where}: {path} is not UTF-8 text") from None
    if path.name == "pyproject.toml":
        return _project_dependencies(text, where, spec.requirements_file)
    result: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-") or line.endswith("\\"):
            raise RecipeError(
                f"{where}: {spec.requirements_file}:{number}: only requirements such as "
                f"'flask==3.1.*' are read, not pip options or continued lines ({line[:40]!r})"
            )
        try:
            _requirement(line)
        except ValueError as error:
            raise RecipeError(f"{where}: {spec.requirements_file}:{number}: {error}") from None
        result.append(line)
    if not result:
        raise RecipeError(f"{where}: {spec.requirements_file} names no requirement")
    return result


def _project_dependencies(text: str, where: str, name: str) -> list[str]:
    """[project].dependencies of a pyproject.toml (PEP 621), each checked as a requirement."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{where}: {name}: not TOML: {error}") from None
    project = data.get("project")
    dependencies = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(dependencies, list) or not dependencies:
        raise RecipeError(f"{where}: {name}: no [project] dependencies list (PEP 621)")
    for index, item in enumerate(dependencies):
        try:
            if not isinstance(item, str) or any(ord(c) < 0x20 for c in item):
                raise ValueError(f"{item!r} is not a requirement string")
            _requirement(item)
        except ValueError as error:
            raise RecipeError(f"{where}: {name}: project.dependencies[{index}]: {error}") from None
    return list(dependencies)
