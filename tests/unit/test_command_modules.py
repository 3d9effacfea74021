"""The command modules no other test imported, through click's runner or their helpers: `xarch diff`
(xarch/diff/commands.py), `xarch sbom`/`referrers` (xarch/sbom/commands.py, xarch/sbom/attach.py),
`xarch trace` without a trace: section (xarch/trace/commands.py), and what the python: section
reads from the Debian lock (xarch/sources/python/commands.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.oci_images import make_artifact, replace_entry
from xarch.build.python import IMAGE_SET, full_version, lock_file, targets
from xarch.cli.diff import diff_command
from xarch.cli.referrers import referrers_command
from xarch.cli.sbom import check_sbom_output, sbom_command
from xarch.cli.trace import trace_command
from xarch.errors import InputError, RecipeError
from xarch.oci.layout import write_layout
from xarch.recipe import load
from xarch.registry.imageref import parse_image_ref
from xarch.sbom.attach import parse_formats
from xarch.sbom.lookup import NoSbom
from xarch.sources.debian.lock import Lock, LockedPackage


@pytest.fixture
def layouts(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, same, other = tmp_path / "a", tmp_path / "same", tmp_path / "other"
    write_layout(make_artifact(), a)
    write_layout(make_artifact(), same)
    write_layout(make_artifact(replace_entry("etc/motd", data=b"changed\n")), other)
    return a, same, other


def test_diff_exits_0_when_identical_and_1_when_not(layouts: tuple[Path, Path, Path]) -> None:
    a, same, other = layouts
    identical = CliRunner().invoke(diff_command, [str(a), str(same), "-q"])
    assert identical.exit_code == 0 and identical.output.startswith(f"identical: {a} and {same}")
    differs = CliRunner().invoke(diff_command, [str(a), str(other), "--json"])
    assert differs.exit_code == 1
    report = json.loads(differs.output)
    assert {d["item"] for d in report["differences"] if d["field"] == "content"} == {"etc/motd"}


def test_diff_of_a_missing_path_is_an_input_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(diff_command, [str(tmp_path / "none"), str(tmp_path / "none2")])
    assert isinstance(result.exception, InputError)


def test_sbom_of_a_layout_without_one_names_the_fix(layouts: tuple[Path, Path, Path]) -> None:
    a, _, _ = layouts
    result = CliRunner().invoke(sbom_command, [str(a), "--platform", "amd64"])
    assert isinstance(result.exception, NoSbom)
    assert "no spdx SBOM is attached to linux/amd64" in str(result.exception)
    assert str(result.exception).endswith("build with `xarch build --sbom spdx`")
    listed = CliRunner().invoke(referrers_command, [str(a), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == []


def test_sbom_output_never_lands_in_a_layout_or_a_folder(layouts: tuple[Path, Path, Path],
                                                         tmp_path: Path) -> None:
    a, _, _ = layouts
    ref = parse_image_ref(str(a))
    with pytest.raises(InputError, match="is inside the OCI layout"):
        check_sbom_output(a / "index.json", ref)
    with pytest.raises(InputError, match="is a folder"):
        check_sbom_output(tmp_path, ref)
    check_sbom_output(tmp_path / "sbom.json", ref)  # a new file elsewhere is fine


def test_sbom_formats() -> None:
    assert parse_formats("spdx,cyclonedx,spdx") == ("spdx", "cyclonedx")
    with pytest.raises(InputError, match="'xml' is not a format"):
        parse_formats("spdx, xml")


def test_trace_without_a_trace_section_says_so(tmp_path: Path) -> None:
    (tmp_path / "xarch.yaml").write_text("name: t\nplatforms: [amd64]\n")
    result = CliRunner().invoke(trace_command, ["-f", str(tmp_path / "xarch.yaml")])
    assert isinstance(result.exception, RecipeError)
    recipe = tmp_path / "xarch.yaml"
    assert str(result.exception) == f"{recipe}: no trace: section; add one (see docs/trace.md)"


def debian_lock(*packages: tuple[str, str]) -> Lock:
    locked = [LockedPackage(name, version, "arm64", f"pool/{name}.deb", 1, "0" * 64, "bookworm")
              for name, version in packages]
    return Lock({}, {}, {IMAGE_SET: {"arm64": locked}})


def test_python_version_and_glibc_come_from_the_debian_lock(tmp_path: Path) -> None:
    (tmp_path / "xarch.yaml").write_text("name: p\nplatforms: [arm64]\npython:\n  requirements: [flask]\n")
    loaded = load(tmp_path / "xarch.yaml")
    assert lock_file(loaded) == tmp_path / "xarch.lock"
    lock = debian_lock(("python3.11", "3.11.2-6+deb12u1"), ("python3", "3.11.2-1+b1"),
                       ("libc6", "2.36-9+deb12u4"))
    assert full_version(lock, "arm64", "3.11") == "3.11.2"
    assert full_version(None, "arm64", "3.11") == "3.11"
    (target,) = targets(loaded, lock).values()
    assert (target.machine, target.python, target.glibc) == ("aarch64", "3.11", "2.36")
    with pytest.raises(RecipeError, match="cannot tell /usr/bin/python3's Python version on arm64"):
        targets(loaded, None)
