"""Labels of runs (search attributes): short ``key = value`` strings to find runs by."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsloom.errors import InputError

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
MAX_VALUE = 256
MAX_LABELS = 32


def check_labels(labels: Mapping[str, Any], *, deleting: bool = False) -> dict[str, str | None]:
    """``labels`` checked: keys of 1-64 letters, digits and ``_.:/-``, string values of at
    most 256 characters (``None`` removes a label when ``deleting``); ``InputError`` naming the
    label otherwise."""
    if not isinstance(labels, Mapping):
        raise InputError(f"labels must be an object of key: value strings, not {labels!r}")
    if len(labels) > MAX_LABELS:
        raise InputError(f"at most {MAX_LABELS} labels, not {len(labels)}")
    out: dict[str, str | None] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise InputError(
                f"label key {key!r} must be 1 to 64 letters, digits or _ . : / - "
                "(starting with a letter or digit)"
            )
        if value is None and deleting:
            out[key] = None
            continue
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise InputError(f"label {key!r} must have a string value of at most {MAX_VALUE} chars")
        out[key] = value
    return out


def parse_label(text: str) -> tuple[str, str]:
    """``key=value`` (or ``key:value``) as a pair; ``InputError`` naming the text otherwise."""
    for separator in ("=", ":"):
        key, found, value = text.partition(separator)
        if found and key:
            check_labels({key: value})
            return key, value
    raise InputError(f"a label filter is key=value, not {text!r}")
