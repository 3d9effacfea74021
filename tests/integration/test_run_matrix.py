"""`xarch platforms`: the strategy matrix of this host, as a table and as JSON."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from xarch import platforms
from xarch.cli.platforms import platforms_command


def matrix_json(*args: str) -> dict:
    result = CliRunner().invoke(platforms_command, ["--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def strategies(report: dict, oci: str) -> dict[str, dict]:
    row = next(row for row in report["platforms"] if row["oci"] == oci)
    return {check["strategy"]: check for check in row["strategies"]}


def test_every_platform_file_has_a_row_and_the_host_is_native() -> None:
    report = matrix_json()
    host = platforms.host()
    assert report["host"] == host.oci
    expected = sorted(p.oci for p in platforms.all_platforms().values())
    assert sorted(row["oci"] for row in report["platforms"]) == expected
    host_row = strategies(report, host.oci)
    assert host_row["native"]["works"] is True
    assert host_row["cross"]["works"] is None and host_row["emulate"]["works"] is None


def test_strategies_that_do_not_work_say_why_and_how_to_fix() -> None:
    report = matrix_json()
    for row in report["platforms"]:
        for check in row["strategies"]:
            if check["works"] is False and check["strategy"] != "native":
                assert check["why"], (row["oci"], check)

    # cross needs nothing on this host: the root comes from the archive
    host = platforms.host().name
    assert all(strategies(report, p.oci)["cross"]["works"] is True
               for p in platforms.all_platforms().values() if p.name != host and host in ("amd64", "arm64"))


@pytest.mark.qemu
def test_arm64_can_cross_and_emulate_here(arm64_emulation: platforms.Platform) -> None:
    need = strategies(matrix_json(), "linux/arm64")
    assert need["native"]["works"] is False
    assert need["emulate"]["works"] is True
    assert need["cross"]["works"] is True, need["cross"]["why"]


@pytest.mark.qemu
def test_setup_enables_emulation_for_every_foreign_platform_with_qemu(
        arm64_emulation: platforms.Platform) -> None:
    if os.geteuid() != 0:
        result = CliRunner().invoke(platforms_command, ["--setup"])
        assert result.exit_code != 0 and "needs root" in str(result.exception)
        return
    result = CliRunner().invoke(platforms_command, ["--setup", "--json"])
    assert result.exit_code == 0, result.output
    assert "arm64: enabled" in result.stderr
    report = json.loads(result.stdout)
    assert strategies(report, "linux/arm/v7")["emulate"]["works"] is True


def test_table_lists_fix_commands() -> None:
    result = CliRunner().invoke(platforms_command, [])
    assert result.exit_code == 0, result.output
    assert "linux/arm64" in result.stdout and "native" in result.stdout
    report = matrix_json()
    for row in report["platforms"]:
        for check in row["strategies"]:
            if check["works"] is False and check["fix"]:
                assert check["fix"] in result.stdout
