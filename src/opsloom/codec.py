"""JSON encoding of everything opsloom stores (inputs, step results, errors, signals).

Integers beyond 64 bits (webhooks carry them: ids, sizes, counters) are stored losslessly: such
a value is written with the standard library's encoder, which keeps every digit, and read back
the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from opsloom.errors import SerializationError

_OPTIONS = orjson.OPT_NON_STR_KEYS

#: Deepest nesting of arrays and objects accepted from outside; far beyond any real payload and
#: below the limits of the encoders, so whatever is read can be stored.
MAX_DEPTH = 200

#: A run of digits long enough to be an integer beyond 64 bits: 2**64 has 20 digits, and a
#: negative one of 19 (below -2**63) is beyond them too; orjson would read either as a float.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def encode(value: Any, *, what: str = "value") -> bytes:
    """Encode ``value`` as JSON bytes, or raise ``SerializationError`` saying what it was."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from None
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from None


def decode(data: bytes | str | None) -> Any:
    """Decode stored JSON (``None`` stays ``None``)."""
    if data is None:
        return None
    if _LONG_NUMBER.search(data.encode() if isinstance(data, str) else data):
        # orjson reads integers beyond 64 bits as floats, losing digits; json keeps them all.
        return json.loads(data)
    return orjson.loads(data)


class JsonTextError(ValueError):
    """Text received from outside is not JSON opsloom accepts; the message says why."""


def _no_constant(name: str) -> Any:
    raise JsonTextError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def read_json(data: bytes | str) -> Any:
    """Parse JSON received from outside (request bodies, webhooks), strictly.

    Integers keep every digit (up to 4,300, Python's limit for reading them), ``NaN`` and
    ``Infinity`` are refused, and so is nesting deeper than :data:`MAX_DEPTH`.

    Raises:
        JsonTextError: the text is not UTF-8 JSON or breaks one of those rules; a
            ``json.JSONDecodeError`` (also a ``ValueError``) for a syntax error.
    """
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH and not _LONG_NUMBER.search(raw):
        # The common case, read at C speed: too few brackets to nest too deep, and no integer
        # orjson would round. orjson refuses what json.loads below refuses too (NaN, bad UTF-8),
        # and whatever it refuses goes on to json.loads for the same answer and message.
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise JsonTextError(
            f"arrays and objects are nested deeper than {MAX_DEPTH} levels"
        ) from None
    except UnicodeDecodeError:
        raise JsonTextError("it is not UTF-8 text") from None
    except (json.JSONDecodeError, JsonTextError):
        raise
    except ValueError as exc:
        # Python refuses to read integers of more than 4,300 digits (a denial-of-service guard).
        raise JsonTextError(f"a number is too long: {exc}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise JsonTextError(f"arrays and objects are nested deeper than {MAX_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays or objects deeper than ``limit`` (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
