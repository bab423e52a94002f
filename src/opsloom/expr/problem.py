"""Errors raised while a document runs, in the shape the DSL defines for them.

The DSL describes an error as an object with ``type`` (a URI), ``status``, ``title``,
``detail`` and ``instance`` (the JSON pointer of the task that raised it). ``try``/``catch``
filters match on those fields; standard types are compared by their last path segment because
the specification and its conformance kit spell the URI prefix differently.
"""

from __future__ import annotations

from typing import Any

STANDARD_PREFIX = "https://serverlessworkflow.io/spec/1.0.0/errors/"

#: The standard error types of the DSL, by their last path segment, with their usual status.
STANDARD_TYPES: dict[str, int] = {
    "configuration": 400,
    "validation": 400,
    "expression": 400,
    "authentication": 401,
    "authorization": 403,
    "timeout": 408,
    "communication": 500,
    "runtime": 500,
}


def standard_type(kind: str) -> str:
    """The full URI of a standard error type (``"timeout"`` -> ``https://…/errors/timeout``)."""
    return STANDARD_PREFIX + kind


def type_matches(expected: str, actual: str) -> bool:
    """Whether error type ``actual`` matches the filter value ``expected``.

    Equal URIs match; a standard type also matches when only the last path segment agrees.
    """
    if expected == actual:
        return True
    tail_e = expected.rstrip("/").rsplit("/", 1)[-1]
    tail_a = actual.rstrip("/").rsplit("/", 1)[-1]
    return tail_e == tail_a and tail_e in STANDARD_TYPES


class TaskError(Exception):
    """An error of a running document: what ``raise`` throws and ``try`` catches."""

    def __init__(
        self,
        type: str,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        instance: str | None = None,
    ) -> None:
        super().__init__(detail or title or type)
        self.type = type
        self.status = status
        self.title = title
        self.detail = detail
        self.instance = instance

    @classmethod
    def standard(
        cls,
        kind: str,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        instance: str | None = None,
    ) -> TaskError:
        """A standard error (``kind`` is e.g. ``"communication"``) with its usual status."""
        return cls(
            standard_type(kind),
            status if status is not None else STANDARD_TYPES[kind],
            title=title,
            detail=detail,
            instance=instance,
        )

    def to_dict(self) -> dict[str, Any]:
        """The error object as documents see it (``$error`` / ``catch.as``); no None fields."""
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        for key in ("title", "detail", "instance"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskError:
        """The inverse of :meth:`to_dict`."""
        return cls(
            str(data.get("type", standard_type("runtime"))),
            int(data.get("status", 500)),
            title=data.get("title"),
            detail=data.get("detail"),
            instance=data.get("instance"),
        )
