"""Masking secret values in text and JSON values before they are stored or shown.

One mechanism for every secret that must not reach run data, errors, logs or the UI: the
``$secrets`` of documents, connection credentials, tokens of authentication policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: What a secret value is replaced with.
MASK = "***"
#: Values shorter than this are not masked: hiding "a" or "no" everywhere would garble text
#: without protecting anything.
SHORTEST = 4


def secret_strings(value: Any) -> list[str]:
    """Every string inside a secret (a string, or the strings of a mapping or list)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in secret_strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in secret_strings(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    return []


class Redactor:
    """Replaces secret values in text and JSON values with :data:`MASK`."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        found = {value for value in values if len(value) >= SHORTEST}
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted(found, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def with_values(self, values: Iterable[str]) -> Redactor:
        """A redactor that also masks ``values`` (e.g. a credential derived from secrets)."""
        return Redactor([*self._values, *values])

    def text(self, text: str) -> str:
        """``text`` with every secret masked."""
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A JSON value with every string (keys included) masked."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
