"""Malformed recipes and bad arguments through the REAL CLI (`python -m xarch.cli` in a subprocess).

Each must end with exit code 2 (bad input) and exactly one line on stderr, `xarch: error: …`, naming the
file, the line and the field; no traceback; the output not created, and an output that
already exists left exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hello import run_xarch

BASE = """\
name: hello
platforms: [amd64, arm64]
epoch: 1700000000
files:
  - src: bin/{arch}/app
    dst: /bin/app
    mode: "0755"
  - src: etc/motd
    dst: /etc/motd
directories:
  - path: /tmp
    mode: "1777"
symlinks:
  - path: /bin/sh
    target: app
"""


@dataclass(frozen=True)
class Case:
    name: str
    old: str  # replaced (first occurrence) in BASE by new
    new: str
    line: int | str | None  # the line (or "line:column") the error must name
    field: str  # the field it must name ("" when the file itself is wrong)
    says: str  # a part of the message


CASES = [
    Case("bad-yaml", "  - src: etc/motd", "  - src: [etc/motd", "9:8", "", "invalid YAML"),
    Case("bad-yaml-indent", "    dst: /etc/motd", "   dst: /etc/motd", "9:4", "", "invalid YAML"),
    Case("unknown-field", "epoch: 1700000000", "epoch: 1700000000\ncolour: blue", 4, "colour",
         "unknown field"),
    Case("unknown-nested-field", "    target: app", "    target: app\n    colour: blue", 16,
         "symlinks[0].colour", "unknown field"),
    Case("unknown-platform", "[amd64, arm64]", "[amd64, sparc]", 2, "platforms", "unknown platform 'sparc'"),
    Case("duplicate-platform", "[amd64, arm64]", "[amd64, arm64, linux/arm64]", 2, "platforms", "twice"),
    Case("mode-as-number", 'mode: "0755"', "mode: 0755", 7, "files[0].mode",
         'quoted octal string such as "0755"'),
    Case("mode-not-octal", 'mode: "0755"', 'mode: "0855"', 7, "files[0].mode", "quoted octal"),
    Case("directory-mode-as-number", 'mode: "1777"', "mode: 1777", 12, "directories[0].mode",
         "quoted octal"),
    Case("bad-owner", '    mode: "0755"', '    mode: "0755"\n    owner: root', 8, "files[0].owner",
         "UID:GID"),
    Case("bad-owner-negative", '    mode: "0755"', '    mode: "0755"\n    owner: -1', 8, "files[0].owner",
         "UID:GID"),
    Case("duplicate-path", "dst: /etc/motd", "dst: /bin/app", 9, "files[1].dst", "duplicate path /bin/app"),
    Case("duplicate-path-symlink", "path: /bin/sh", "path: /etc/motd/", 14, "symlinks[0].path",
         "duplicate path /etc/motd"),
    Case("duplicate-yaml-key", "epoch: 1700000000", "epoch: 1700000000\nname: other", 4, "",
         "duplicate key 'name' (first on line 1)"),
    Case("relative-dst", "dst: /bin/app", "dst: bin/app", 6, "files[0].dst", "absolute path"),
    Case("dotdot-dst", "dst: /bin/app", "dst: /bin/../app", 6, "files[0].dst", "'..'"),
    Case("missing-name", "name: hello\n", "", 1, "name", "is required"),
    Case("bad-name", "name: hello", "name: Hello", 1, "name", "lower-case image name"),
    Case("negative-epoch", "epoch: 1700000000", "epoch: -5", 3, "epoch", "greater than or equal to 0"),
    Case("files-not-a-list", "files:\n", "files: 7\nxfiles:\n", 4, "files", "list"),
]

# Found when the per-platform sources are checked; still before any progress line or output.
SOURCE_CASES = [
    Case("unknown-placeholder", "src: bin/{arch}/app", "src: bin/{cpu}/app", 5, "files[0].src",
         "unknown placeholder {cpu}"),
    Case("broken-placeholder", "src: bin/{arch}/app", "src: bin/{arch/app", 5, "files[0].src", "placeholder"),
    Case("missing-file-for-one-platform", "", "", 5, "files[0].src", "no such file (platform arm64)"),
    Case("source-outside-the-folder", "src: etc/motd", "src: ../../../etc/passwd", 8, "files[1].src",
         "outside the recipe's folder"),
]


def make_recipe(folder: Path, case: Case) -> Path:
    (folder / "bin" / "amd64").mkdir(parents=True)
    (folder / "bin" / "amd64" / "app").write_text("#!/bin/sh\necho amd64\n")
    if case.name != "missing-file-for-one-platform":
        (folder / "bin" / "arm64").mkdir(parents=True)
        (folder / "bin" / "arm64" / "app").write_text("#!/bin/sh\necho arm64\n")
    (folder / "etc").mkdir()
    (folder / "etc" / "motd").write_text("hello\n")
    assert case.old in BASE
    recipe = folder / "xarch.yaml"
    recipe.write_text(BASE.replace(case.old, case.new, 1))
    return recipe


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under PATH (or PATH itself) by relative path → sha256 of its bytes."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def assert_one_error_line(stderr: str, *parts: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("xarch: error: "), lines[0]
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def check_case(tmp_path: Path, case: Case, quiet: bool) -> None:
    recipe = make_recipe(tmp_path / "recipe", case)
    fresh = tmp_path / "out" / "fresh"
    existing = tmp_path / "out" / "existing"
    existing.mkdir(parents=True)
    (existing / "index.json").write_text('{"old": true}')
    (existing / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')  # a layout: replaceable
    archive = tmp_path / "out" / "existing.tar"
    archive.write_bytes(b"old archive")
    before = {p: tree_digest(p) for p in (existing, archive)}
    flags = ["-q"] if quiet else []
    result = run_xarch("build", "-f", str(recipe), *flags, "-o", f"oci:{fresh}", "-o", f"oci:{existing}",
                       "-o", f"oci-archive:{archive}", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    where = f"{recipe}:{case.line}: " if case.line else f"{recipe}: "
    line = assert_one_error_line(result.stderr, where, case.says)
    if case.field:
        assert line.startswith(f"xarch: error: {where}{case.field}: "), line
    assert result.stdout == ""
    assert not fresh.exists()
    assert {p: tree_digest(p) for p in (existing, archive)} == before
    # Nothing half-written beside the outputs either.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["existing", "existing.tar"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_recipe_is_one_line_and_writes_nothing(tmp_path: Path, case: Case) -> None:
    check_case(tmp_path, case, quiet=False)


@pytest.mark.parametrize("quiet", [False, True], ids=["plain", "quiet"])
@pytest.mark.parametrize("case", SOURCE_CASES, ids=lambda c: c.name)
def test_bad_source_is_one_line_and_writes_nothing(tmp_path: Path, case: Case, quiet: bool) -> None:
    check_case(tmp_path, case, quiet=quiet)


@pytest.mark.parametrize("platforms", ["[arm64, mips]", "[riscv64]", "[aarch64]"])
def test_file_platforms_must_be_known_and_built(tmp_path: Path, platforms: str) -> None:
    case = Case("file-platforms", '    mode: "0755"', f'    mode: "0755"\n    platforms: {platforms}', 8,
                "files[0].platforms", "")
    check_case(tmp_path, case, quiet=False)


def _plain_recipe(tmp_path: Path) -> Path:
    return make_recipe(tmp_path / "recipe", Case("plain", "", "", None, "", ""))


def test_missing_recipe_file(tmp_path: Path) -> None:
    result = run_xarch("build", "-f", str(tmp_path / "nope.yaml"), "-o", f"oci:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, f"{tmp_path / 'nope.yaml'}: no such recipe file")
    assert not (tmp_path / "out").exists()


def test_recipe_that_is_a_fifo_is_named_so(tmp_path: Path) -> None:
    fifo = tmp_path / "xarch.yaml"
    os.mkfifo(fifo)
    result = run_xarch("build", "-f", str(fifo), "-o", f"oci:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, f"{fifo}: the recipe is not a regular file")
    assert not (tmp_path / "out").exists()


def test_a_tag_or_push_reference_given_twice_is_refused(tmp_path: Path) -> None:
    recipe = _plain_recipe(tmp_path)
    for option in ("-t", "--push"):
        result = run_xarch("build", "-f", str(recipe), option, "demo:1", option, "demo:1",
                           "-o", f"oci:{tmp_path / 'out'}")
        assert result.returncode == 2
        assert_one_error_line(result.stderr, f"{option} 'demo:1': given twice")
    assert not (tmp_path / "out").exists()


def test_recipe_that_is_not_a_mapping(tmp_path: Path) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text("- just\n- a list\n")
    result = run_xarch("build", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(recipe), "mapping")


def test_platform_not_in_the_recipe(tmp_path: Path) -> None:
    recipe = _plain_recipe(tmp_path)
    result = run_xarch("build", "-f", str(recipe), "--platform", "riscv64", "-o", f"oci:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "--platform riscv64", "amd64, arm64")
    assert not (tmp_path / "out").exists()


def test_unknown_platform_option_is_one_line(tmp_path: Path) -> None:
    recipe = _plain_recipe(tmp_path)
    result = run_xarch("build", "-f", str(recipe), "--platform", "sparc", "-o", f"oci:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "--platform", "sparc")


def test_bad_output_spec(tmp_path: Path) -> None:
    recipe = _plain_recipe(tmp_path)
    result = run_xarch("build", "-f", str(recipe), "-o", f"tarball:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "--output", "oci:DIR")
    assert not (tmp_path / "out").exists()


def test_docker_platform_that_was_not_built(tmp_path: Path) -> None:
    recipe = _plain_recipe(tmp_path)
    target = tmp_path / "hello.docker.tar"
    result = run_xarch("build", "-f", str(recipe), "--platform", "amd64", "-o", f"docker-archive:{target}",
                       "--docker-platform", "arm64", "-q")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "docker-archive", "arm64", "not built")
    assert not target.exists()


def test_inspect_of_a_missing_path(tmp_path: Path) -> None:
    result = run_xarch("inspect", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(tmp_path / "nothing"))


def test_inspect_of_a_folder_that_is_no_layout(tmp_path: Path) -> None:
    result = run_xarch("inspect", str(tmp_path))
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(tmp_path), "not an OCI layout")


def test_inspect_of_a_file_that_is_no_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 40)
    result = run_xarch("inspect", str(junk))
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(junk), "not a tar archive")


def test_inspect_of_a_layout_with_a_corrupt_blob(tmp_path: Path) -> None:
    recipe = _plain_recipe(tmp_path)
    layout = tmp_path / "layout"
    assert run_xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{layout}").returncode == 0
    blobs = layout / "blobs" / "sha256"
    index_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest_digest = json.loads((blobs / index_digest[7:]).read_text())["manifests"][1]["digest"]
    manifest = blobs / manifest_digest[7:]
    manifest.write_bytes(manifest.read_bytes() + b" ")
    result = run_xarch("inspect", str(layout))
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "does not match its digest")


def test_push_names_a_bad_reference_before_it_says_anything(tmp_path: Path) -> None:
    (tmp_path / "layout").mkdir()
    for ref in ("127.0.0.1:5000/app@sha256:" + "a" * 64, "Bad/Name:1"):
        result = run_xarch("push", str(tmp_path / "layout"), ref)
        assert result.returncode == 2 and "pushing" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_ctrl_c_while_click_loads_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """KeyboardInterrupt raised by the import of click (a stand-in `click` package first on the
    path): `xarch: interrupted`, exit 130, no traceback, as for Ctrl-C anywhere later."""
    import subprocess
    import sys

    fake = tmp_path / "fake" / "click"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise KeyboardInterrupt\n")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), str(repo)])}
    result = subprocess.run([sys.executable, "-m", "xarch.cli", "--help"], env=env, capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "xarch: interrupted\n"
