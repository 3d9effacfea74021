"""`xarch platforms`: which platforms this host can build, and how."""

from __future__ import annotations

import json
import os

import click
from rich.table import Table

from xarch import platforms
from xarch.cli.console import results_console
from xarch.cli.options import json_option
from xarch.run import binfmt, qemu
from xarch.run.matrix import PlatformRow, StrategyCheck, host_matrix


def _cell(check: StrategyCheck) -> str:
    return {None: "-", True: "yes", False: "no"}[check.works]


def _table(rows: list[PlatformRow], host: str) -> Table:
    table = Table(title=f"build strategies on this {host} host")
    table.add_column("platform")
    for strategy in ("native", "cross", "emulate"):
        table.add_column(strategy)
    for row in rows:
        cells = {check.strategy: _cell(check) for check in row.checks}
        table.add_row(row.oci, cells["native"], cells["cross"], cells["emulate"])
    return table


def _fixes(rows: list[PlatformRow]) -> list[str]:
    """One line per strategy that does not work but could: why, and the command that fixes it."""
    return [
        f"{row.oci} {check.strategy}: {check.why}; fix: {check.fix}"
        for row in rows
        for check in row.checks
        if check.works is False and check.fix
    ]


def setup_emulation() -> list[str]:
    """Mount binfmt_misc and enable qemu-* for every foreign platform whose QEMU is installed."""
    if os.geteuid() != 0:
        raise binfmt.BinfmtError("xarch platforms --setup needs root (it mounts binfmt_misc): use sudo")
    host = platforms.host()
    foreign = [
        plat for plat in platforms.all_platforms().values()
        if plat.name != host.name and qemu.find_qemu(plat) is not None and binfmt.format_file(plat).is_file()
    ]
    states = binfmt.ensure_binfmt(foreign, setup=True)
    return [f"{name}: {'enabled' if state.works else state.problem()}" for name, state in states.items()]


@click.command("platforms")
@click.option("--setup", is_flag=True, help="As root: mount binfmt_misc, register QEMU for every platform.")
@json_option
def platforms_command(setup: bool, as_json: bool) -> None:
    """Each platform, which strategies (native, cross, emulate) work here now, and how to fix the rest."""
    if setup:
        for line in setup_emulation():
            click.echo(line, err=as_json)
    host = platforms.host()
    rows = host_matrix(host)
    if as_json:
        click.echo(json.dumps({"host": host.oci, "platforms": [row.to_json() for row in rows]}, indent=2))
        return
    console = results_console()
    console.print(_table(rows, host.name))
    for line in _fixes(rows):
        console.print(line, highlight=False, soft_wrap=True)
