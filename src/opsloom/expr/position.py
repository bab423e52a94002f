"""Reading YAML or JSON text into plain data while remembering where every node was.

The text is composed into ruamel.yaml's node graph (round-trip loader), which keeps the start
mark of every key and item, duplicate keys included. The graph is then turned into plain
JSON-compatible data by hand, so that each JSON pointer gets the line and column of the text
that produced it and so that YAML-only oddities (timestamps, binary, non-string keys, anchors
that refer to themselves) cannot leak into the rest of the system.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from opsloom.expr.diagnostic import Problem, kind_of, pointer

#: Deeper nesting is refused: no workflow needs it and recursion further down would fail.
MAX_DEPTH = 100
#: Aliases may expand a small text into a huge tree ("billion laughs"); this caps the tree.
MAX_NODES = 100_000

_TAG = "tag:yaml.org,2002:"


@dataclass
class Parsed:
    """The outcome of reading a text: data (None when unreadable), positions and problems."""

    data: Any = None
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _line_col(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def parse_text(text: str, source: str) -> Parsed:
    """Read ``text`` as YAML (JSON being YAML) into plain data with positions.

    Never raises for bad input: every failure becomes a :class:`Problem` of the result.
    """
    parsed = Parsed()
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        line, column = _line_col(text, too_deep)
        parsed.problems.append(
            Problem(
                source, line, column, "", f"the document has nesting deeper than {MAX_DEPTH} levels"
            )
        )
        return parsed
    try:
        root = YAML(typ="rt").compose(text)
    except (YAMLError, RecursionError, ValueError, UnicodeError) as exc:
        if _looks_like_json(text):
            fallback = _from_json(text, source, parsed)
            if fallback:
                return parsed
        parsed.problems.append(_syntax_problem(exc, text, source))
        return parsed
    if root is None:
        parsed.problems.append(
            Problem(source, 1, 1, "", "the document is empty; expected a mapping with 'document'")
        )
        return parsed
    converter = _Converter(source)
    try:
        parsed.data = converter.convert(root, [], 0, ())
    except _TooBigError as exc:
        parsed.problems.append(Problem(source, exc.line, exc.column, exc.path, str(exc)))
        return parsed
    parsed.positions = converter.positions
    parsed.problems.extend(converter.problems)
    if not isinstance(parsed.data, dict):
        line, column = _mark(root)
        parsed.problems.append(
            Problem(
                source,
                line,
                column,
                "",
                f"the top level is {kind_of(parsed.data)}; a workflow document is a mapping "
                "with 'document' and 'do'",
            )
        )
    return parsed


def _flow_too_deep(text: str) -> int | None:
    """Where brackets nest deeper than :data:`MAX_DEPTH`, if they do (outside quotes).

    The YAML reader recurses once per level and takes seconds to fail on thousands of them;
    this scan refuses such text up front. Brackets inside plain scalars are counted too,
    which can only make the limit stricter for texts no workflow resembles.
    """
    depth = 0
    quote = ""
    for index, char in enumerate(text):
        if char == "\n" and not depth:
            # Outside brackets a quote does not survive the line (an apostrophe in a plain
            # scalar, "something's wrong", must not hide the rest of the text).
            quote = ""
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return index
        elif char in "]}" and depth:
            depth -= 1
    return None


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def _from_json(text: str, source: str, parsed: Parsed) -> bool:
    """Fallback for JSON that the YAML reader refuses: data without positions, or a problem.

    Returns whether the fallback produced a result (data or a JSON syntax problem).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        parsed.problems.append(
            Problem(source, exc.lineno, exc.colno, "", f"invalid JSON: {exc.msg}")
        )
        return True
    except (ValueError, RecursionError):
        return False
    parsed.data = data
    if not isinstance(data, dict):
        parsed.problems.append(
            Problem(source, 1, 1, "", f"the top level is {kind_of(data)}; expected a mapping")
        )
    return True


def _syntax_problem(exc: BaseException, text: str, source: str) -> Problem:
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{message} ({exc.context}"
            if exc.context_mark is not None:
                message += f" started at line {exc.context_mark.line + 1}"
            message += ")"
        if "block end" in message or "block mapping" in message or "mapping values" in message:
            # The scanner's vocabulary; what it almost always means is misaligned keys.
            message += "; check the indentation"
        return Problem(source, mark.line + 1, mark.column + 1, "", f"invalid YAML: {message}")
    if isinstance(exc, ReaderError):
        line, column = _line_col(text, exc.position)
        return Problem(
            source,
            line,
            column,
            "",
            f"invalid character {chr(exc.character)!r} (code {exc.character:#x}): {exc.reason}"
            if isinstance(exc.character, int)
            else f"invalid text: {exc.reason}",
        )
    if isinstance(exc, RecursionError):
        return Problem(source, 1, 1, "", "the document is nested too deeply to read")
    return Problem(source, 1, 1, "", f"invalid YAML: {exc}")


def _mark(node: Node) -> tuple[int, int]:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _TooBigError(Exception):
    def __init__(self, message: str, path: str, line: int, column: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column


class _Converter:
    """Turns a composed node graph into plain data, recording a position per JSON pointer."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.positions: dict[str, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def convert(
        self, node: Node, path: list[str | int], depth: int, active: tuple[int, ...]
    ) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            line, column = _mark(node)
            what = (
                f"more than {MAX_NODES} nodes (aliases expand too much)"
                if self.count > MAX_NODES
                else f"nesting deeper than {MAX_DEPTH} levels"
            )
            raise _TooBigError(f"the document has {what}", pointer(path), line, column)
        here = pointer(path)
        self.positions.setdefault(here, _mark(node))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if id(node) in active:
            line, column = _mark(node)
            self.problems.append(
                Problem(self.source, line, column, here, "an alias refers to its own ancestor")
            )
            return None
        inner = (*active, id(node))
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            for index, item in enumerate(node.value):
                items.append(self.convert(item, [*path, index], depth + 1, inner))
            return items
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth, inner)
        return None

    def _mapping(
        self, node: MappingNode, path: list[str | int], depth: int, active: tuple[int, ...]
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.update(self._merge_source(value_node, path, depth, active))
                continue
            key = self._key(key_node, path)
            key_pos = _mark(key_node)
            if key in seen:
                first_line, first_col = seen[key]
                self.problems.append(
                    Problem(
                        self.source,
                        key_pos[0],
                        key_pos[1],
                        pointer([*path, key]),
                        f"duplicate key {key!r} (first defined at line {first_line}, "
                        f"column {first_col})",
                    )
                )
            else:
                seen[key] = key_pos
            # The key's position is where a reader looks for "this property".
            self.positions[pointer([*path, key])] = key_pos
            result[key] = self.convert(value_node, [*path, key], depth + 1, active)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_source(
        self, node: Node, path: list[str | int], depth: int, active: tuple[int, ...]
    ) -> dict[str, Any]:
        """The mappings named by a ``<<`` merge key, earlier ones winning (YAML merge rules)."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        out: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                line, column = _mark(source)
                self.problems.append(
                    Problem(self.source, line, column, pointer(path), "'<<' must merge mappings")
                )
                continue
            # Converted on a scratch converter so that merged keys do not claim positions
            # of their own: a merged key is reported where the merge is written.
            scratch = _Converter(self.source)
            scratch.count = self.count
            value = scratch.convert(source, list(path), depth + 1, active)
            self.count = scratch.count
            if isinstance(value, dict):
                for key, item in value.items():
                    out.setdefault(key, item)
        return out

    def _key(self, node: Node, path: list[str | int]) -> str:
        if isinstance(node, ScalarNode):
            # Keys are strings in JSON: keep the text as written (`200:` stays "200").
            return str(node.value)
        line, column = _mark(node)
        self.problems.append(
            Problem(
                self.source,
                line,
                column,
                pointer(path),
                "a mapping key must be a plain string, not a list or mapping",
            )
        )
        return f"<complex key at line {line}>"


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag or ""
    text = str(node.value)
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return text.lower() in ("true", "yes", "on", "y")
    if tag == _TAG + "int":
        return _int(text)
    if tag == _TAG + "float":
        return _float(text)
    # Strings, and what JSON has no type for (timestamps, binary, custom tags): the text.
    return text


def _int(text: str) -> int | str:
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    body = digits.lstrip("+-")
    try:
        for prefix, base in (("0b", 2), ("0o", 8), ("0x", 16)):
            if body.lower().startswith(prefix):
                return sign * int(body[2:], base)
        if ":" in body:  # sexagesimal (YAML 1.1): 1:30 == 90
            total = 0
            for part in body.split(":"):
                total = total * 60 + int(part)
            return sign * total
        return sign * int(body, 10)
    except ValueError:
        return text


def _float(text: str) -> float | str:
    lowered = text.replace("_", "").lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    try:
        return float(lowered)
    except ValueError:
        return text
