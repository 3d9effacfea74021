"""YAML with positions: load a document and find the line of any field in it.

Validation errors (from pydantic) come as a path of keys and indexes; the node tree
PyYAML composes keeps the line of every key and value, so an error can name
"xarch.yaml:12: files[2].mode". PyYAML also silently keeps the last of two equal keys;
this module refuses them instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xarch.errors import InputError


class YamlPositionError(InputError, ValueError):
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
    """A loaded YAML document: DATA (plain dicts, lists, scalars), ROOT, the node tree holding lines,
    and SHA256, the hex digest of the file's bytes (what DATA was made from)."""

    data: Any
    root: yaml.Node | None
    sha256: str = ""

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


# No recipe field nests more than a few levels; the bound keeps every recursive walk of
# the document (duplicate keys, pydantic, the line finder) far from the interpreter's limit.
MAX_DEPTH = 64


def _refuse_deep_nesting(root: yaml.Node | None) -> None:
    """YamlPositionError naming the line of the first node nested deeper than MAX_DEPTH."""
    pending: list[tuple[yaml.Node, int]] = [(root, 1)] if root is not None else []
    while pending:  # iterative, so the check itself cannot overflow the stack
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise YamlPositionError(node.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode):
            pending.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((child, depth + 1) for child in node.value)


# A recipe has hundreds of nodes. Aliases can make a short document expand to billions
# ("billion laughs"): everything after loading (checks, validation) walks the expanded data.
MAX_EXPANDED_NODES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes NODE stands for once every alias is expanded (each shared node counted once
    per use, computed once)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # an alias cycle (which SafeLoader refuses anyway) counts once
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, memo) for item in node.value)
    memo[id(node)] = size
    return size


def _refuse_duplicate_keys(node: yaml.Node | None, seen_nodes: set[int] | None = None) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if node is None or id(node) in seen_nodes:
        return  # an alias: that node was checked where it was defined
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise YamlPositionError(
                    key_node.start_mark.line + 1, f"duplicate key {key!r} (first on line {seen[key]})"
                )
            seen[key] = key_node.start_mark.line + 1
            _refuse_duplicate_keys(value_node, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, seen_nodes)


_MERGE = "tag:yaml.org,2002:merge"


def _has_merge_key(node: yaml.Node | None, seen: set[int]) -> bool:
    if node is None or id(node) in seen:
        return False
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        return any(key.tag == _MERGE or _has_merge_key(value, seen) for key, value in node.value)
    if isinstance(node, yaml.SequenceNode):
        return any(_has_merge_key(item, seen) for item in node.value)
    return False


def _construct(root: yaml.Node | None, text: str) -> Any:
    """What yaml.safe_load(TEXT) gives, built from ROOT, the node tree of TEXT already composed
    (safe_load is compose, then construct_document): the file is parsed once, not twice. A `<<`
    merge key is flattened in place by the constructor, which would move the lines ROOT keeps:
    such a document is parsed again instead."""
    if root is None:
        return None
    if _has_merge_key(root, set()):
        return yaml.safe_load(text)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


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
        # Alias expansion first: the other walks visit a shared node once per use.
        if root is not None and _expanded_size(root, {}) > MAX_EXPANDED_NODES:
            # Said for a large document without aliases too: it holds that many values itself.
            raise YamlPositionError(None, f"holds more than {MAX_EXPANDED_NODES} values "
                                          "(an alias counts once per use)")
        _refuse_deep_nesting(root)
        _refuse_duplicate_keys(root)
        data = _construct(root, text)
    except yaml.reader.ReaderError as error:
        # PyYAML's reader refuses the character before any mark exists; its position
        # counts characters of TEXT.
        line, column = _line_column(text, error.position)
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        raise YamlPositionError(line, f"invalid YAML: character {character} is not allowed ({error.reason})",
                                column) from None
    except RecursionError:
        # PyYAML's composer recurses once per level: nesting deeper than the interpreter's
        # stack fails there, before _refuse_deep_nesting can name a line.
        raise YamlPositionError(None, f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = f"invalid YAML: {error.problem or error.context}"
        if error.problem and "got '{'" in error.problem:
            # `[{src: bin/{arch}/x}]`: inside flow style, a placeholder's brace starts a mapping.
            message += '; inside [ ] or { }, quote a value that holds {placeholders} ("bin/{arch}/x")'
        raise YamlPositionError(mark.line + 1 if mark else None, message,
                                mark.column + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise YamlPositionError(None, f"invalid YAML: {error}") from None
    return PositionedYaml(data, root, hashlib.sha256(raw).hexdigest())
