"""Durations of documents: ISO 8601 strings (``PT5M``) or inline objects (``{minutes: 5}``)."""

from __future__ import annotations

import re
from typing import Any

from opsloom.expr.problem import TaskError

_ISO = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNITS = {
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


def seconds_of(value: Any) -> float:
    """The number of seconds of a duration (a number is taken as seconds).

    Raises:
        TaskError: a ``validation`` error when ``value`` is not a duration.
    """
    if isinstance(value, bool):
        raise TaskError.standard("validation", f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        total = 0.0
        for key, amount in value.items():
            if key not in _UNITS or not isinstance(amount, int | float):
                raise TaskError.standard("validation", f"not a duration: {value!r}")
            total += float(amount) * _UNITS[key]
        return total
    if isinstance(value, str):
        match = _ISO.match(value.strip())
        if match and value.strip() not in ("P", "PT") and not value.strip().endswith("T"):
            return sum(
                float(amount) * _UNITS[key]
                for key, amount in match.groupdict().items()
                if amount is not None
            )
    raise TaskError.standard("validation", f"not a duration: {value!r}")
