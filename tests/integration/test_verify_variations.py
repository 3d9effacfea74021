"""`xarch verify` under variations: each variation really changes its condition, real rebuilds agree,
and a real difference between two builds is reported down to the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.support.needs import need_root
from xarch.errors import XarchError
from xarch.verify.rebuild import (
    OLD_MTIME,
    OTHER_HOSTNAME,
    VARIATION_NAMES,
    VARIATIONS,
    BuildRequest,
    Conditions,
    VariationResult,
    VerifyReport,
    build_env,
    copy_source,
    hand_over_to_variation,
    judge,
    layout_digests,
    parse_variations,
    print_report,
    run_build,
    skip_reason,
    wrap_command,
)

RECIPE = """\
name: probe
tag: "1"
platforms: [amd64, arm64]
epoch: 1700000000
config:
  cmd: ["/bin/app"]
  env: {PATH: /bin}
files:
  - src: app.sh
    dst: /bin/app
  - src: etc
    dst: /etc/probe
layers:
  - name: base
    paths: ["/bin/**"]
  - name: app
    paths: ["**"]
"""


def make_recipe(folder: Path, motd: str = "hello\n") -> Path:
    (folder / "etc" / "sub").mkdir(parents=True)
    (folder / "app.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(folder / "app.sh", 0o755)
    (folder / "etc" / "motd").write_text(motd)
    (folder / "etc" / "sub" / "a.conf").write_text("a=1\n")
    (folder / "xarch.yaml").write_text(RECIPE)
    return folder / "xarch.yaml"


PROBE = """
import json, os, socket
files = sorted(p for p in os.listdir('etc') + ['app.sh'])
root = os.getcwd()
stats = {name: os.stat(os.path.join('etc', name) if name != 'app.sh' else name) for name in files}
mask = os.umask(0); os.umask(mask)
print(json.dumps({
    "hostname": socket.gethostname(), "uid": os.getuid(), "umask": mask,
    "TZ": os.environ.get("TZ"), "LANG": os.environ.get("LANG"), "LC_ALL": os.environ.get("LC_ALL"),
    "cpus": len(os.sched_getaffinity(0)), "cache": os.environ.get("XARCH_CACHE"), "cwd": root,
    "modes": {n: oct(s.st_mode & 0o777) for n, s in stats.items()},
    "mtimes": {n: int(s.st_mtime) for n, s in stats.items()},
}))
"""


def probe(tmp_path: Path, source: Path, name: str, conditions: Conditions) -> dict[str, Any]:
    base = tmp_path / "work" / name
    copy = base / conditions.folder
    copy_source(source, copy, conditions)
    env = build_env(conditions, 1_700_000_000, base)
    hand_over_to_variation(base, conditions)
    result = subprocess.run(wrap_command(conditions, [sys.executable, "-c", PROBE]), cwd=copy, env=env,
                            capture_output=True, text=True, check=True)
    probed: dict[str, Any] = json.loads(result.stdout)
    return probed


def test_each_variation_changes_what_it_says(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_recipe(source)
    os.chmod(tmp_path, 0o755)
    reference = probe(tmp_path, source, "reference", Conditions())
    assert (reference["TZ"], reference["LANG"], reference["umask"]) == ("UTC", "C.UTF-8", 0o022)
    expected_changes = {
        "build_path": {"cwd"}, "tz": {"TZ"}, "locale": {"LANG", "LC_ALL"}, "umask": {"umask", "modes"},
        "hostname": {"hostname"}, "user": {"uid", "cache"}, "cpus": {"cpus"}, "file_order": set(),
        "mtimes": {"mtimes"}, "cache": {"cache"},
    }
    assert set(expected_changes) == set(VARIATION_NAMES)
    for variation in VARIATIONS:
        if variation.name == "cpus" and (os.cpu_count() or 1) < 2:
            continue  # one CPU already: pinning to it changes nothing observable
        reason = skip_reason(variation.conditions)
        if reason:
            assert variation.name in ("hostname", "user"), reason
            continue
        seen = probe(tmp_path, source, variation.name, variation.conditions)
        changed = {key for key in reference if key not in ("cwd", "mtimes") and seen[key] != reference[key]}
        if not seen["cwd"].endswith(Conditions().folder):
            changed.add("cwd")
        if set(seen["mtimes"].values()) == {OLD_MTIME}:
            changed.add("mtimes")
        assert changed == expected_changes[variation.name], variation.name
    if os.geteuid() == 0:
        renamed = probe(tmp_path, source, "h2", Conditions(hostname=OTHER_HOSTNAME))
        assert renamed["hostname"] == OTHER_HOSTNAME
        assert probe(tmp_path, source, "u2", Conditions(user="nobody"))["uid"] == 65534


def test_umask_variation_strips_group_and_other_bits(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_recipe(source)
    copy_source(source, tmp_path / "copy", Conditions(umask=0o077, strip_group_other=True))
    assert oct((tmp_path / "copy" / "app.sh").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "copy" / "etc" / "motd").stat().st_mode & 0o777) == "0o600"


def test_parse_variations() -> None:
    assert parse_variations(None) == VARIATION_NAMES
    assert parse_variations("all") == VARIATION_NAMES
    assert parse_variations("tz, umask,tz") == ("tz", "umask")
    with pytest.raises(XarchError, match=r"unknown variation nope \(known: build_path"):
        parse_variations("tz,nope")


def test_a_real_difference_is_reported_down_to_the_file(tmp_path: Path) -> None:
    """The pipeline gives no variation to catch, so two recipes that differ by one input stand in."""
    from xarch import platforms
    from xarch.recipe import load, resolve_epoch

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    loaded_a = load(make_recipe(tmp_path / "a"))
    loaded_b = load(make_recipe(tmp_path / "b", motd="bonjour\n"))
    plats = tuple(platforms.get(name) for name in ("amd64", "arm64"))
    epoch, _ = resolve_epoch(loaded_a)
    reference = run_build(BuildRequest(loaded_a, plats, epoch, tmp_path / "w"), "reference", Conditions())
    other = run_build(BuildRequest(loaded_b, plats, epoch, tmp_path / "w"), "other", Conditions(umask=0o077))
    report = VerifyReport(reference=layout_digests(reference))
    result = VariationResult("umask", "umask 077", "same")
    judge(result, reference, report.reference, other)
    report.results.append(result)
    assert result.status == "differs" and not report.identical
    assert result.changed == ["index", "linux/amd64", "linux/arm64"]
    first = result.differences[0]
    assert (first["item"], first["field"]) == ("etc/probe/motd", "content")
    assert first["where"] == "layer 1 (xarch layer app)"
    assert first["changes"] == ["layer 1 of linux/amd64", "config of linux/amd64", "manifest of linux/amd64",
                                "index"]
    console = Console(record=True, width=200)
    print_report(report, False, console)
    text = console.export_text()
    assert "DIFFERS" in text and "etc/probe/motd: content" in text and "NOT reproducible" in text


@pytest.mark.slow
def test_verify_command_runs_every_variation(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path)
    result = subprocess.run([sys.executable, "-m", "xarch.cli", "verify", "-f", str(recipe), "--json"],
                            capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["identical"] is True
    statuses = {v["name"]: v["status"] for v in data["variations"]}
    assert list(statuses) == list(VARIATION_NAMES)
    for name, status in statuses.items():
        expected = {"same", "skipped"} if name in ("hostname", "user") and os.geteuid() != 0 else {"same"}
        assert status in expected, (name, status)
    ran = [v for v in data["variations"] if v["status"] == "same"]
    assert all(v["digests"] == data["reference"] for v in ran)


def test_without_root_hostname_and_user_are_skipped_with_a_note(tmp_path: Path) -> None:
    """Run the check itself as nobody: what a non-root user of `xarch verify` gets."""
    need_root("to become another user")
    code = ("from xarch.verify.rebuild import Conditions, skip_reason; "
            "print(skip_reason(Conditions(hostname='x'))); print(skip_reason(Conditions(user='nobody')))")
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
                             sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[2])
    assert result.stdout.splitlines() == ["needs root to set a hostname in a new UTS namespace",
                                          "needs root to run the build as another user"]
