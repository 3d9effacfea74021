"""`xarch verify`'s verdict (issue 10, "Verification compares everything"): NOT reproducible (exit 1)
only when a rebuild gave other digests; a rebuild that could not run is "could not verify" (exit 2);
a variation that cannot apply to the recipe (another user and a dockerfile: stage without access
to the Docker socket) is "not applicable", not a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

from tests.support import needs
from tests.support.needs import need_root, need_tool
from xarch.errors import BuildError, Verdict
from xarch.recipe import load
from xarch.verify.rebuild import (
    VARIATIONS,
    VariationResult,
    VerifyReport,
    docker_socket,
    not_applicable,
    print_report,
    verdict_error,
)


def report_of(*statuses: str) -> VerifyReport:
    return VerifyReport({"index": "sha256:" + "a" * 64},
                        [VariationResult(f"v{i}", "d", status, note=f"note {i}")
                         for i, status in enumerate(statuses)])


def verdict_text(report: VerifyReport) -> str:
    console = Console(record=True, width=200)
    print_report(report, False, console)
    return console.export_text().strip().splitlines()[-1]


def test_only_a_difference_is_not_reproducible() -> None:
    assert verdict_error(report_of("same", "skipped", "not applicable")) is None
    assert verdict_text(report_of("same", "not applicable")) == "all digests identical under every variation"

    error = verdict_error(report_of("same", "failed", "differs"))
    assert isinstance(error, Verdict) and error.exit_code == 1 and "v2" in str(error)
    assert verdict_text(report_of("failed", "differs")) == "NOT reproducible"

    error = verdict_error(report_of("same", "failed"))
    assert isinstance(error, BuildError) and error.exit_code == 2
    assert str(error) == "could not verify: the v1 rebuild(s) could not run (note 1)"
    assert verdict_text(report_of("same", "failed")) == "not verified: 1 rebuild(s) could not run"


def test_user_variation_of_a_dockerfile_stage_without_the_socket_is_not_applicable(tmp_path: Path) -> None:
    need_root("the user variation needs root (as xarch verify itself)")
    need_tool("setpriv")
    socket_path = docker_socket()
    if socket_path is None or not Path(socket_path).exists():
        needs.missing("no Docker socket (scripts/start-dockerd starts dockerd)")
    user = next(v for v in VARIATIONS if v.name == "user").conditions
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "xarch.yaml").write_text("name: d\nplatforms: [amd64]\nepoch: 1\n"
                                         "stages:\n  app: {dockerfile: app/Dockerfile}\n")
    with_docker = load(tmp_path / "xarch.yaml")
    mode = os.stat(socket_path).st_mode
    if mode & 0o002:
        needs.not_applicable(f"{socket_path} is writable by everyone on this host")
    reason = not_applicable(user, with_docker)
    assert reason == (f"the recipe has dockerfile: stages and user nobody cannot use the Docker socket "
                      f"{socket_path}")
    shutil.rmtree(tmp_path / "app")
    (tmp_path / "xarch.yaml").write_text("name: d\nplatforms: [amd64]\nepoch: 1\n")
    assert not_applicable(user, load(tmp_path / "xarch.yaml")) is None  # no dockerfile stage: applies


def test_the_changed_digests_column_of_a_same_row_says_none_before_its_note() -> None:
    # It read "built with build_path+tz+… at once" under "digests that changed" on rows that were the same.
    console = Console(record=True, width=200)
    print_report(report_of("same", "failed"), False, console)
    lines = [line for line in console.export_text().splitlines() if line.count("│") >= 4]
    rows = {line.split("│")[1].strip(): line for line in lines}
    assert "none (note 0)" in rows["v0"]
    assert "note 1" in rows["v1"] and "none" not in rows["v1"]
