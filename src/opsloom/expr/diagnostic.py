"""What is wrong with a workflow document, said with where it is wrong.

A :class:`Problem` is one finding of the loader or the validator. It carries the source name,
the 1-based line and column of the offending node and its JSON pointer, so editors, the CLI and
the API can all point at the same place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document.

    Attributes:
        source: File name, or ``"<string>"`` for text given directly.
        line: 1-based line of the offending node.
        column: 1-based column of the offending node.
        path: JSON pointer of the offending node (``""`` is the whole document).
        message: Plain English: what is wrong and, when obvious, what would be right.
    """

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.path or '/'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The problem as a JSON object (the ``--json`` output of ``opsloom validate``)."""
        return asdict(self)


def pointer(parts: Sequence[str | int]) -> str:
    """The JSON pointer (RFC 6901) of a path given as keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def split_pointer(path: str) -> list[str]:
    """The reference tokens of a JSON pointer, unescaped (``"/a~1b/0"`` -> ``["a/b", "0"]``)."""
    if not path:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]


def kind_of(value: Any, *, integers: bool = False) -> str:
    """What kind of JSON value ``value`` is, in words (``"a string"``, ``"null"`` …).

    Args:
        value: a value parsed from JSON or YAML.
        integers: say ``"an integer"`` rather than ``"a number"`` for a whole number, where a
            schema tells the two apart.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer" if integers else "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"
