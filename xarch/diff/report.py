"""How `xarch diff` shows its result: a rich table, or JSON for machines."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xarch.diff.compare import DiffResult
from xarch.jsonbytes import exact
from xarch.visible import visible

MAX_ROWS = 200  # a table longer than this helps nobody; --json has every difference
MAX_VALUE = 80


def _short(value: Any) -> str:
    if value is None:
        return "-"
    text = visible(value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False))
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _cell(text: str) -> Text:
    # A Text, never a str: rich reads `[red]` or `[/x]` in a str as markup (a link target `[/x]`
    # in an image crashed `xarch diff` with MarkupError).
    return Text(visible(text))


def print_diff(result: DiffResult, as_json: bool, console: Console) -> None:
    """Print RESULT: with AS_JSON one JSON document on stdout, else a table of at most MAX_ROWS
    differences on CONSOLE, text diffs of small files, notes and a summary line. Text that came
    from the images is shown escaped (xarch.visible), never as markup.
    """
    if as_json:
        print(json.dumps(exact(result.to_json()), indent=2, sort_keys=True, default=str))
        return
    if result.identical:
        console.print(visible(f"identical: {result.a} and {result.b}"), markup=False, highlight=False)
        for note in result.notes:
            console.print(visible(f"note: {note}"), markup=False, highlight=False)
        return
    table = Table(title=Text(f"A: {visible(result.a)}\nB: {visible(result.b)}"), title_justify="left")
    for column in ("platform", "where", "item", "what", "A", "B", "changes digest of"):
        table.add_column(column, overflow="fold")
    for difference in result.differences[:MAX_ROWS]:
        table.add_row(*(_cell(text) for text in (
            difference.platform or "-", difference.where, difference.item, difference.field,
            _short(difference.a), _short(difference.b), ", ".join(difference.changes) or "none")))
    console.print(table)
    for difference in result.differences:
        if difference.diff:  # a small text file: show what changed, as diff -u does
            console.print(visible(f"{difference.platform} {difference.where}: /{difference.item}"),
                          markup=False, highlight=False)
            console.out(difference.diff, end="", highlight=False)
    if len(result.differences) > MAX_ROWS:
        console.print(f"… and {len(result.differences) - MAX_ROWS} more (see --json)", highlight=False)
    for note in result.notes:
        console.print(visible(f"note: {note}"), markup=False, highlight=False)
    changed = result.changed_digests()
    count = len(result.differences)
    console.print(f"{count} difference{'' if count == 1 else 's'}; digests that differ: "
                  f"{', '.join(changed) or 'none'}", markup=False, highlight=False)
