"""JSON encoding of everything opsloom stores (inputs, step results, errors, signals)."""

from __future__ import annotations

from typing import Any

import orjson

from opsloom.errors import SerializationError

_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode(value: Any, *, what: str = "value") -> bytes:
    """Encode ``value`` as JSON bytes, or raise ``SerializationError`` saying what it was."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from None


def decode(data: bytes | str | None) -> Any:
    """Decode stored JSON (``None`` stays ``None``)."""
    if data is None:
        return None
    return orjson.loads(data)
