"""YAML with positions: load a document and find the line of any field in it.

Validation errors (from pydantic) come as a path of keys and indexes; the node tree
PyYAML composes keeps the line of every key and value, so an error can name
"xarch.yaml:12: files[2].mode". PyYAML also silently keeps the last of two equal keys;
this module refuses them instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class YamlPositionError(ValueError):
    """Not valid YAML (or not UTF-8) at 1-based LINE and COLUMN (None when unknown)."""

    def __init__(self, line: int | None, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def _line_column(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of OFFSET (characters of a str, bytes of bytes) in TEXT."""
    newline = "\n" if isinstance(text, str) else b"\n"
    before = text[:offset]
    return before.count(newline) + 1, offset - (before.rfind(newline) + 1) + 1  # type: ignore[arg-type]


@dataclass
class PositionedYaml:
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the field at LOC, or of its nearest existing parent."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == key:
                        line = key_node.start_mark.line + 1
                        node = value_node
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _refuse_duplicate_keys(node: yaml.Node | None) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise YamlPositionError(
                    key_node.start_mark.line + 1, f"duplicate key {key!r} (first on line {seen[key]})"
                )
            seen[key] = key_node.start_mark.line + 1
            _refuse_duplicate_keys(value_node)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item)


def load(path: Path) -> PositionedYaml:
    """Parse PATH; YamlPositionError (with line and column) when it is not UTF-8 or not valid
    YAML, e.g. holds a character YAML 1.1 refuses (NUL and other C0 controls but tab, CR, LF)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(raw, error.start)
        raise YamlPositionError(line, f"not UTF-8: byte {raw[error.start]:#04x} ({error.reason})",
                                column) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _refuse_duplicate_keys(root)
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as error:
        # PyYAML's reader refuses the character before any mark exists; its position
        # counts characters of TEXT.
        line, column = _line_column(text, error.position)
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        raise YamlPositionError(line, f"invalid YAML: character {character} is not allowed ({error.reason})",
                                column) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = f"invalid YAML: {error.problem or error.context}"
        raise YamlPositionError(mark.line + 1 if mark else None, message,
                                mark.column + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise YamlPositionError(None, f"invalid YAML: {error}") from None
    return PositionedYaml(data, root)
