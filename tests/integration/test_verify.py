"""`xarch verify` (xarch/verify/rebuild.py): rebuild under varied conditions, compare, name the difference.

The happy path runs the real CLI on the example. A build that is not reproducible cannot be
made from the foundation's recipe fields alone (they are pure functions of the inputs), so
the "names the first differing blob" path is checked on two real layouts that differ in one
layer, through the same `judge` that `rebuild_and_compare` calls.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.hello import (
    HELLO,
    HelloBuild,
    copy_hello,
    run_ok,
    run_xarch,
)
from xarch.verify.rebuild import (
    VARIATION_NAMES,
    Conditions,
    VariationResult,
    copy_source,
    judge,
    layout_digests,
    parse_variations,
)


@pytest.mark.slow
def test_verify_of_the_example_is_identical(tmp_path: Path, hello_build: HelloBuild) -> None:
    recipe = copy_hello(tmp_path / "hello")
    result = run_ok("verify", "-f", str(recipe), "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert report["identical"] is True
    # The reference rebuild gives the digests of an ordinary build of the example.
    assert report["reference"]["index"] == hello_build.index_digest
    for row in hello_build.summary["images"]:
        assert report["reference"][row["platform"]] == row["manifest_digest"]
    statuses = {v["name"]: v["status"] for v in report["variations"]}
    assert set(statuses) == set(VARIATION_NAMES)
    assert set(statuses.values()) <= {"same", "skipped"}
    # Running as root here, every variation applies: none may be skipped silently.
    if os.geteuid() == 0:
        assert set(statuses.values()) == {"same"}, statuses
    for variation in report["variations"]:
        if variation["status"] == "same":
            assert variation["digests"] == report["reference"]


@pytest.mark.slow
def test_verify_table_says_identical_and_exits_0(tmp_path: Path, hello_binaries: Path) -> None:
    recipe = copy_hello(tmp_path / "hello")
    result = run_ok("verify", "-f", str(recipe), "--platform", "arm64", cwd=tmp_path)
    assert "all digests identical" in result.stdout
    assert "linux/amd64" not in result.stdout
    assert "reference linux/arm64: sha256:" in result.stdout


def _layout(tmp_path: Path, name: str, motd: str) -> Path:
    recipe = copy_hello(tmp_path / name)
    (tmp_path / name / "etc" / "motd").write_text(motd)
    run_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / name / 'out'}")
    return tmp_path / name / "out"


def test_judge_names_the_one_layer_that_differs(tmp_path: Path, hello_binaries: Path) -> None:
    first = _layout(tmp_path, "a", "one message\n")
    second = _layout(tmp_path, "b", "another message\n")
    reference = layout_digests(first)
    result = VariationResult("motd", "a changed source file", "same")
    judge(result, first, reference, second)
    assert result.status == "differs"
    assert result.changed == ["index", "linux/amd64", "linux/arm64"]
    assert result.difference_count >= 1
    first_difference = result.differences[0]
    assert first_difference["item"] in ("etc/motd", "/etc/motd")
    assert first_difference["where"].startswith("layer 1")  # the app layer; the base layer is the same
    assert first_difference["platform"] == "linux/amd64"
    assert first_difference["changes"][-1] == "index"


def test_judge_of_identical_layouts_is_same(tmp_path: Path, hello_build: HelloBuild) -> None:
    again = tmp_path / "again"
    run_ok("build", "-f", str(HELLO), "-q", "-o", f"oci:{again}")
    result = VariationResult("again", "the same build", "same")
    judge(result, hello_build.layout, layout_digests(hello_build.layout), again)
    assert (result.status, result.changed, result.differences) == ("same", [], [])


def test_copy_source_varies_only_what_it_says(tmp_path: Path, hello_binaries: Path) -> None:
    conditions = Conditions(umask=0o077, strip_group_other=True, reverse_creation=True, mtime=1_234_567_890)
    target = tmp_path / "copy"
    copy_source(HELLO, target, conditions)
    originals = {p.relative_to(HELLO) for p in HELLO.rglob("*") if p.parts[len(HELLO.parts)] != "dist"}
    assert {p.relative_to(target) for p in target.rglob("*")} == originals
    for relative in originals:
        copied, original = target / relative, HELLO / relative
        if original.is_file() and not original.is_symlink():
            assert copied.read_bytes() == original.read_bytes()
            assert copied.stat().st_mode & 0o077 == 0
            assert copied.stat().st_mtime == 1_234_567_890


def test_parse_variations() -> None:
    assert parse_variations(None) == VARIATION_NAMES
    assert parse_variations("all") == VARIATION_NAMES
    assert parse_variations("tz, umask,tz") == ("tz", "umask")
    with pytest.raises(Exception, match="unknown variation nope"):
        parse_variations("tz,nope")


def test_verify_of_a_broken_recipe_is_one_line(tmp_path: Path) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text("name: x\nplatforms: [amd64]\nfiles:\n  - src: missing\n    dst: /m\n")
    result = run_xarch("verify", "-f", str(recipe), cwd=tmp_path)
    assert result.returncode == 2  # bad input (errors.py's table), never the "not reproducible" verdict
    assert "NOT reproducible" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("xarch: error: ") and "missing" in lines[-1]


def _cache_entries(cache: Path) -> set[Path]:
    """The image cache entries in CACHE."""
    return set((cache / "images").glob("*.json"))


@pytest.mark.slow
def test_verify_rebuilds_instead_of_reusing_cached_images(tmp_path: Path, hello_binaries: Path) -> None:
    """A cache entry that names another image shows whether verify's builds come from the cache."""
    cache = tmp_path / "cache"
    recipe = copy_hello(tmp_path / "hello")
    other = copy_hello(tmp_path / "other")
    (tmp_path / "other" / "etc" / "motd").write_text("another image\n")
    amd64 = ("-q", "--platform", "amd64")
    run_ok("build", "-f", str(recipe), *amd64, "-o", f"oci:{tmp_path / 'a'}", cache=cache)
    (entry_a,) = _cache_entries(cache)
    run_ok("build", "-f", str(other), *amd64, "-o", f"oci:{tmp_path / 'b'}", cache=cache)
    (entry_b,) = _cache_entries(cache) - {entry_a}
    # Poison: the hello recipe's cache entry now names the other image.
    entry_a.write_bytes(entry_b.read_bytes())
    poisoned = run_ok("build", "-f", str(recipe), "-q", "--json", "--platform", "amd64",
                      "-o", f"oci:{tmp_path / 'c'}", cache=cache)
    honest = run_ok("build", "-f", str(recipe), "-q", "--json", "--no-cache", "--platform", "amd64",
                    "-o", f"oci:{tmp_path / 'd'}", cache=cache)
    assert json.loads(poisoned.stdout)["index_digest"] != json.loads(honest.stdout)["index_digest"]

    result = run_xarch("verify", "-f", str(recipe), "--platform", "amd64", "--json", cwd=tmp_path,
                       cache=cache)
    report = json.loads(result.stdout)
    assert report["reference"]["index"] == json.loads(honest.stdout)["index_digest"]
    assert result.returncode == 0 and report["identical"] is True
