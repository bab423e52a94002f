"""Turning text into a checked Serverless Workflow document.

``load_document`` is the one entry point most callers need: it reads YAML or JSON, validates it
against the DSL 1.0.3 JSON Schema and checks what the schema cannot (names, references, jq
expressions, features of this runtime), then either returns a :class:`Document` or raises
:class:`~opsloom.errors.DocumentError` listing every problem at once, each with its line,
column and JSON pointer::

    doc = load_document_file("remediate.yaml", runtime=RuntimeFeatures.detect())
    doc.name, doc.position("/do/1/restart")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloom.dsl.feature import UNSUPPORTED_FEATURES, RuntimeFeatures
from opsloom.dsl.semantic import CatalogCheck, semantic_problems
from opsloom.dsl.validation import SCHEMA_VERSION, schema_errors
from opsloom.errors import DocumentError
from opsloom.expr.diagnostic import Problem, pointer, split_pointer
from opsloom.expr.jqcheck import jq_problem
from opsloom.expr.position import parse_text

__all__ = [
    "SCHEMA_VERSION",
    "UNSUPPORTED_FEATURES",
    "CatalogHas",
    "Document",
    "DocumentError",
    "Problem",
    "RuntimeFeatures",
    "jq_problem",
    "load_document",
    "load_document_file",
    "parse_document",
    "validate_document",
]

#: Answers whether the default catalog has function ``name`` at ``version``.
CatalogHas = Callable[[str, str], bool]


@dataclass(frozen=True)
class Document:
    """A parsed workflow document: plain JSON data plus where each node came from.

    Attributes:
        data: The document as plain JSON-compatible data (dicts, lists, str, int, float,
            bool, None).
        source: The file name, or ``"<string>"``.
    """

    data: dict[str, Any]
    source: str = "<string>"
    positions: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    def position(self, path: str) -> tuple[int, int]:
        """The 1-based ``(line, column)`` of the node at JSON pointer ``path``.

        A pointer to a node that does not exist gives the position of its nearest existing
        ancestor (a missing property is reported where its parent is).
        """
        tokens = split_pointer(path)
        while True:
            found = self.positions.get(pointer(tokens))
            if found is not None:
                return found
            if not tokens:
                return (1, 1)
            tokens = tokens[:-1]

    def problem(self, path: str, message: str) -> Problem:
        """A :class:`Problem` about the node at ``path`` of this document."""
        line, column = self.position(path)
        return Problem(self.source, line, column, path, message)

    def _header(self, key: str) -> str:
        header = self.data.get("document")
        value = header.get(key) if isinstance(header, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def name(self) -> str:
        """``document.name`` (empty when missing)."""
        return self._header("name")

    @property
    def namespace(self) -> str:
        """``document.namespace`` (empty when missing)."""
        return self._header("namespace")

    @property
    def version(self) -> str:
        """``document.version`` (empty when missing)."""
        return self._header("version")


def parse_document(text: str, source: str = "<string>") -> Document:
    """Read YAML or JSON text into a :class:`Document` (no validation).

    Raises:
        DocumentError: The text is not YAML/JSON, has duplicate keys or recursive aliases,
            or its top level is not a mapping; every such problem is listed.
    """
    parsed = parse_text(text, source)
    if parsed.problems or not isinstance(parsed.data, dict):
        raise DocumentError(
            parsed.problems or [Problem(source, 1, 1, "", "the document is not a mapping")]
        )
    return Document(data=parsed.data, source=source, positions=parsed.positions)


def validate_document(
    doc: Document,
    *,
    catalog_has: CatalogHas | None = None,
    catalog_check: CatalogCheck | None = None,
    runtime: RuntimeFeatures | None = None,
) -> list[Problem]:
    """Every problem of a parsed document: schema first, then meaning, by position.

    Args:
        doc: The document to check.
        catalog_has: Whether the default catalog has a function (``name``, ``version``); when
            None, calls of ``name:version@default`` are not checked.
        catalog_check: What is wrong with the arguments of a call of a default catalog
            function (checked against its input schema; values that are runtime expressions
            are left to run time); when None, the arguments are not checked.
        runtime: What this machine supports; when None, features that depend on the runtime
            (containers, script languages, unsupported call kinds) are not reported.
    """
    found: list[tuple[str, str]] = list(schema_errors(doc.data))
    for path, message in semantic_problems(
        doc.data, catalog_has=catalog_has, catalog_check=catalog_check, runtime=runtime
    ):
        entry = (pointer(path), message)
        if entry not in found:
            found.append(entry)
    problems = [doc.problem(path, message) for path, message in found]
    # Stable: problems at the same place keep schema-before-semantics order.
    return sorted(problems, key=lambda p: (p.line, p.column))


def load_document(
    text: str,
    source: str = "<string>",
    *,
    catalog_has: CatalogHas | None = None,
    catalog_check: CatalogCheck | None = None,
    runtime: RuntimeFeatures | None = None,
) -> Document:
    """Parse and validate a document.

    Raises:
        DocumentError: With all problems at once (syntax, schema and semantic).
    """
    doc = parse_document(text, source)
    problems = validate_document(
        doc, catalog_has=catalog_has, catalog_check=catalog_check, runtime=runtime
    )
    if problems:
        raise DocumentError(problems)
    return doc


def load_document_file(
    path: str | Path,
    *,
    catalog_has: CatalogHas | None = None,
    catalog_check: CatalogCheck | None = None,
    runtime: RuntimeFeatures | None = None,
) -> Document:
    """:func:`load_document` for a file; its path (as given) is the problems' source.

    Raises:
        DocumentError: The file cannot be read (as a problem at 1:1) or the document is
            invalid.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DocumentError([Problem(source, 1, 1, "", f"cannot read the file: {reason}")]) from exc
    return load_document(
        text, source, catalog_has=catalog_has, catalog_check=catalog_check, runtime=runtime
    )
